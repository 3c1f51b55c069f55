"""The core policy for local files and URLs (siliconvision.guards), tested directly."""

from __future__ import annotations

import os
import pickle
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from siliconvision import SiliconVisionClient, build_content, prepare_messages
from siliconvision.content import Video
from siliconvision.errors import ContentError, ImageInputError
from siliconvision.guards import (
    AllowedFile,
    GuardError,
    LocalFileError,
    check_local_file,
    fetch_url,
    message_url_source,
    read_checked_file,
    read_local_file,
)
from siliconvision.images import encode_image, prepare_image
from tests.imaging import make_image

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
VIDEO = "Qwen/Qwen3-VL-8B-Instruct"
PNG = make_image((24, 16), "red")
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(64)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "a.png").write_bytes(PNG)
    (allowed / "clip.mp4").write_bytes(MP4)
    (allowed / "fake.mp4").write_text("SECRET=hunter2\n")
    (outside / "secret.png").write_bytes(PNG)
    return {"allowed": allowed, "outside": outside}


# --------------------------------------------------------------------------- message urls


@pytest.mark.parametrize(
    "url",
    ["https://example.com/a.png", "HTTP://example.com/a.png", "data:image/png;base64,AAAA"],
)
def test_http_urls_and_data_uris_pass_as_they_are(url: str) -> None:
    assert message_url_source(url, field="url", allowed_dirs=None) == url


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("photos/red.png", "is a local path"),
        ("/etc/passwd", "is a local path"),
        ("file:///etc/passwd", "is a file: URL"),
        ("FILE:///etc/passwd", "is a file: URL"),
    ],
)
def test_local_files_need_the_program_to_opt_in(url: str, what: str) -> None:
    with pytest.raises(ImageInputError) as info:
        message_url_source(url, field="message 0, content item 1: image url", allowed_dirs=None)
    text = str(info.value)
    assert f"message 0, content item 1: image url {what}" in text
    assert "allowed_dirs=[...]" in text and "image_block(path)" in text
    assert "ImageBlock(path=...)" in text


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/a.png", "scheme 'ftp'"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme 'gopher'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("file://fileserver/share/a.png", "a file: URL on another host"),
    ],
)
def test_other_schemes_are_refused_by_name(tree: dict[str, Path], url: str, reason: str) -> None:
    with pytest.raises(ImageInputError, match=reason):
        message_url_source(url, field="url", allowed_dirs=[tree["allowed"]])


def test_opted_in_paths_and_file_urls_are_read_inside_allowed_dirs(tree: dict[str, Path]) -> None:
    allowed = tree["allowed"]
    for url in ("a.png", str(allowed / "a.png"), (allowed / "a.png").as_uri()):
        found = message_url_source(url, field="url", allowed_dirs=[allowed])
        assert isinstance(found, AllowedFile) and found.data == PNG
    for url in ("../outside/secret.png", (tree["outside"] / "secret.png").as_uri()):
        with pytest.raises(GuardError, match="outside the allowed directories"):
            message_url_source(url, field="url", allowed_dirs=[allowed])


def test_check_path_runs_before_the_file_is_looked_up(tree: dict[str, Path]) -> None:
    seen: list[str] = []

    def refuse(path: str) -> None:
        seen.append(path)
        raise ContentError("not a video name")

    with pytest.raises(ContentError, match="not a video name"):
        message_url_source(
            "missing.png", field="url", allowed_dirs=[tree["allowed"]], check_path=refuse
        )
    assert seen == ["missing.png"]


# --------------------------------------------------------------------------- local files


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="needs /proc")
def test_pseudo_files_and_devices_are_refused_by_stat() -> None:
    for path, reason in (
        ("/proc/self/environ", "in /proc"),
        ("/dev/zero", "in /dev"),
        ("/dev/null", "in /dev"),
    ):
        real = os.path.realpath(path)
        with pytest.raises(LocalFileError, match=reason):
            check_local_file(real, os.stat(real), max_bytes=1 << 20)
        with pytest.raises(LocalFileError, match=reason):
            read_local_file(path)


def test_regular_files_only_not_empty_and_under_the_cap(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "ok").write_bytes(PNG)
    for name, reason in (
        ("pipe", r"not a regular file \(a FIFO\)"),
        (".", r"not a regular file \(a directory\)"),
        ("empty", r"empty \(0 bytes\)"),
    ):
        with pytest.raises(LocalFileError, match=reason):
            read_local_file(tmp_path / name)
    with pytest.raises(LocalFileError, match=f"{len(PNG):,} bytes is more than the 10-byte"):
        read_local_file(tmp_path / "ok", max_bytes=10)
    assert read_local_file(tmp_path / "ok", max_bytes=len(PNG)).data == PNG


def test_nothing_past_the_checked_size_is_read(tmp_path: Path) -> None:
    path = tmp_path / "growing.png"
    path.write_bytes(PNG)
    info = os.stat(path)
    with open(path, "ab") as grow:  # the file grows after it was checked
        grow.write(b"\0" * 100)
    with pytest.raises(LocalFileError, match="changed size while it was read"):
        read_checked_file(str(path), info)
    swapped = tmp_path / "swapped.png"
    swapped.write_bytes(PNG)
    info = os.stat(swapped)
    (tmp_path / "other.png").write_bytes(PNG)
    os.replace(tmp_path / "other.png", swapped)  # another file under the same name
    with pytest.raises(LocalFileError, match="changed while it was checked"):
        read_checked_file(str(swapped), info)


def test_explicit_paths_follow_the_file_rules_and_the_cap(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "a.png").write_bytes(PNG)
    for call in (
        lambda: prepare_image(tmp_path / "pipe.png", cache=None),
        lambda: encode_image(tmp_path / "pipe.png", cache=None),
        lambda: build_content([tmp_path / "pipe.png"], model=QWEN, cache=None),
    ):
        with pytest.raises(ImageInputError, match="FIFO"):
            call()
    with pytest.raises(ImageInputError, match="-byte limit"):
        prepare_image(tmp_path / "a.png", max_file_bytes=len(PNG) - 1, cache=None)
    assert prepare_image(tmp_path / "a.png", max_file_bytes=len(PNG), cache=None).width == 24


# --------------------------------------------------------------------------- content


def test_message_content_names_the_message_and_item(tree: dict[str, Path]) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {
            "role": "user",
            "content": ["look:", {"type": "image_url", "image_url": {"url": "a.png"}}],
        },
    ]
    with pytest.raises(ImageInputError, match="message 2, content item 1: image url is a local"):
        prepare_messages(messages, model=QWEN)
    prepared = prepare_messages(messages, model=QWEN, allowed_dirs=[tree["allowed"]])
    assert prepared[2]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_a_bad_image_inside_allowed_dirs_is_named_by_its_path(tree: dict[str, Path]) -> None:
    (tree["allowed"] / "text.png").write_text("not an image")
    with pytest.raises(ImageInputError) as info:
        build_content(
            [{"type": "image_url", "image_url": {"url": "text.png"}}],
            model=QWEN,
            allowed_dirs=tree["allowed"],
        )
    assert info.value.source == str((tree["allowed"] / "text.png").resolve())
    assert "not an image" in info.value.reason


def test_message_videos_need_opt_in_a_video_name_and_video_bytes(tree: dict[str, Path]) -> None:
    allowed = tree["allowed"]

    def video(url: str, dirs: Any = None) -> list[dict[str, Any]]:
        part = {"type": "video_url", "video_url": {"url": url}}
        return build_content([part], model=VIDEO, allowed_dirs=dirs)

    with pytest.raises(ImageInputError, match=r"^video clip\.mp4: .*video url is a local path"):
        video("clip.mp4")
    assert video("clip.mp4", [allowed])[0]["video_url"]["url"].startswith("data:video/mp4;base64,")
    with pytest.raises(ContentError, match="is not a video"):
        video("fake.mp4", [allowed])  # the text file named .mp4
    with pytest.raises(ContentError, match="not a known video type"):
        video("a.png", [allowed])
    with pytest.raises(ContentError, match="data:video/"):
        video("data:text/plain;base64,U0VDUkVU")
    assert video("https://example.com/v.mp4")[0]["video_url"]["url"] == "https://example.com/v.mp4"


def test_explicit_videos_are_checked_too(tree: dict[str, Path]) -> None:
    allowed = tree["allowed"]
    parts = build_content([Video(allowed / "clip.mp4")], model=VIDEO)
    assert parts[0]["video_url"]["url"].startswith("data:video/mp4;base64,")
    with pytest.raises(ContentError, match="is not a video"):
        build_content([Video(allowed / "fake.mp4")], model=VIDEO)
    os.mkfifo(allowed / "pipe.mp4")
    with pytest.raises(ContentError, match="FIFO"):
        build_content([Video(allowed / "pipe.mp4")], model=VIDEO)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_bytearray_and_memoryview_work_wherever_bytes_do(wrap: Any) -> None:
    data = wrap(PNG)
    for items in (data, [data], ["What?", data]):
        parts = build_content(items, model=QWEN, cache=None)
        assert [p["type"] for p in parts if p["type"] == "image_url"] == ["image_url"]
    assert encode_image(data, cache=None).width == 24
    client = SiliconVisionClient(api_key="sk-x", base_url="http://127.0.0.1:9/v1")
    for images in (data, [data], (data, data)):
        content = client.ask_messages(images, "q")[0]["content"]
        assert [type(item) for item in content[:-1]] == [wrap] * (
            2 if isinstance(images, tuple) else 1
        )
        prepared = client.prepare_messages(client.ask_messages(images, "q"))
        assert prepared[0]["content"][0]["type"] == "image_url"
    view = memoryview(PNG)[::1]  # a view with its own shape works too
    assert build_content([view], model=QWEN, cache=None)[0]["type"] == "image_url"


def test_client_ask_sends_file_urls_through_the_message_policy(tree: dict[str, Path]) -> None:
    client = SiliconVisionClient(api_key="sk-x", base_url="http://127.0.0.1:9/v1")
    url = (tree["allowed"] / "a.png").as_uri()
    with pytest.raises(ImageInputError, match="is a file: URL"):
        client.prepare_messages(client.ask_messages([url], "q"))
    opted = SiliconVisionClient(
        api_key="sk-x", base_url="http://127.0.0.1:9/v1", allowed_dirs=tree["allowed"]
    )
    assert opted.prepare_messages(opted.ask_messages([url], "q"))[0]["content"][0]["type"]


def test_input_errors_survive_pickling() -> None:
    error = pickle.loads(pickle.dumps(ImageInputError("a.png", "not an image", kind="video")))
    assert (str(error), error.source, error.kind) == ("video a.png: not an image", "a.png", "video")
    guard = pickle.loads(pickle.dumps(GuardError("refused path x: outside")))
    assert str(guard) == "refused path x: outside" and isinstance(guard, ImageInputError)


# --------------------------------------------------------------------------- fetching


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = self.server.server_port  # type: ignore[attr-defined]
        hops = {
            "/to-private": f"http://10.0.0.7:{port}/a.png",
            "/to-loopback-name": f"http://rebind.example.com:{port}/a.png",
        }
        if self.path in hops:
            self.send_response(302)
            self.send_header("Location", hops[self.path])
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", []
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetching_is_guarded_by_default(server: tuple[str, list[str]]) -> None:
    base, _ = server
    with pytest.raises(ImageInputError, match=r"fetch refused: .*loopback"):
        prepare_image(f"{base}/a.png", fetch_urls=True, cache=None)
    with pytest.raises(ImageInputError, match=r"fetch refused: .*loopback"):
        build_content(
            [{"type": "image_url", "image_url": {"url": f"{base}/a.png"}}],
            model=QWEN,
            fetch_urls=True,
        )
    trusted = prepare_image(f"{base}/a.png", fetch_urls=True, allow_private_urls=True, cache=None)
    assert trusted.width == 24


def test_every_redirect_hop_is_checked(server: tuple[str, list[str]]) -> None:
    base, _ = server
    seen: list[str] = []

    def loopback_only(url: str) -> None:  # what a caller's own check may allow
        seen.append(url)
        if "127.0.0.1" not in url:
            raise GuardError(f"refused URL {url}: not the test server")

    with pytest.raises(ImageInputError, match=r"redirect refused: refused URL http://10\.0\.0\.7"):
        fetch_url(f"{base}/to-private", url_check=loopback_only, allow_private=True)
    assert seen == [f"{base}/to-private", seen[1]] and "10.0.0.7" in seen[1]


def test_the_address_connected_to_is_the_address_checked(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name passes the URL check (it resolves to a public address
    then), and resolves to 127.0.0.1 when the connection is made. The connection-time
    check refuses it, and no request reaches the server."""
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example.com":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    def public(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    with pytest.raises(
        ImageInputError,
        match=r"fetch refused: host 'rebind\.example\.com' "
        r"resolves to 127\.0\.0\.1, a loopback address",
    ):
        fetch_url(f"http://rebind.example.com:{port}/a.png", resolver=public)


def test_guarded_fetches_ignore_proxies(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTP(S)_PROXY would connect for us to a host we never checked."""
    base, _ = server
    monkeypatch.setenv("http_proxy", base)  # a "proxy" on loopback
    monkeypatch.setenv("no_proxy", "")

    def public(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    real = socket.getaddrinfo

    def no_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "images.example.com":
            raise socket.gaierror(socket.EAI_NONAME, "offline")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    # Direct: the name does not resolve at connect time: refused, not sent to the proxy
    # (which, a loopback test server, would have answered with an image).
    with pytest.raises(ImageInputError, match="fetch refused: could not resolve 'images"):
        fetch_url("http://images.example.com/a.png", resolver=public)
