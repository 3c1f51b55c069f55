"""Hostile input: tool arguments an agent's model may be tricked into, and hostile images.

Both image tools (LangChain ``SiliconVisionTool``, LlamaIndex ``SiliconVisionToolSpec``)
get the same table of hostile ``image`` arguments, sync and async, as an agent calls
them. Each must be refused with a readable message naming the reason, with no file
opened (a process-wide audit hook on ``open`` watches every thread) and no request
made (the emulator's log stays empty). Names are resolved by an injected resolver
that plays a hostile DNS: nothing here touches the network.

Hostile images (bombs, strips, truncated files, polyglots, zero bytes...) must raise a
clear ``ImageInputError`` before any request, through the tools and both chat models,
in bounded memory and time (measured in a child process under an address-space limit).
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
from PIL import Image

from langchain_siliconvision import ChatSiliconVision, SiliconVisionTool, image_block
from llama_index_siliconvision import SiliconVision, SiliconVisionToolSpec
from siliconvision.errors import ContentError, ImageInputError
from siliconvision.testing import LocalSiliconCloud

from .conftest import QWEN, Figures, FileWatch, png

# --------------------------------------------------------------------------- sandbox


@dataclass
class Sandbox:
    allowed: Path
    outside: Path
    secret: Path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    root = tmp_path_factory.mktemp("sandbox")
    allowed, outside = root / "allowed", root / "outside"
    (allowed / "sub").mkdir(parents=True)
    outside.mkdir()
    secret = outside / "secret.png"
    secret.write_bytes(png((48, 48), "green"))  # a real image: if read, it would be sent
    (outside / "secret.txt").write_text("api_key=sk-should-never-leave")
    (allowed / "ok.png").write_bytes(png((48, 48), "blue"))
    (allowed / "link_out.png").symlink_to(secret)
    (allowed / "linkdir").symlink_to(outside, target_is_directory=True)
    (allowed / "sub" / "chain.png").symlink_to(allowed / "link_out.png")
    (allowed / "abs_link.png").symlink_to("/etc/passwd")
    os.mkfifo(allowed / "pipe.png")
    (allowed / "folder.png").mkdir()
    return Sandbox(allowed, outside, secret)


@pytest.fixture(scope="module")
def hostile_emu() -> Iterator[LocalSiliconCloud]:
    """One emulator for the module: its log must stay empty through every hostile call."""
    with LocalSiliconCloud() as emulator:
        yield emulator


# A hostile DNS: these names resolve to internal addresses (DNS rebinding, wildcard DNS).
_DNS = {
    "rebind.example.com": ["127.0.0.1"],
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "metadata.example.net": ["169.254.169.254"],
    "mixed.example.org": ["93.184.215.14", "10.0.0.7"],
    "v6.example.com": ["::1"],
    "mapped.example.com": ["::ffff:192.168.1.1"],
}
RESOLVED: list[str] = []


def hostile_dns(host: str, port: int) -> Iterable[str]:
    RESOLVED.append(host)
    if host not in _DNS:
        raise OSError(f"no such host {host!r} (the test resolver knows no public names)")
    return _DNS[host]


_LOOPBACK = "a loopback address"
_OUTSIDE = "outside the allowed directories"
_SCHEME = "give a local file path or an http\\(s\\) URL"
_PRIVATE = "a private address"
_META = "link-local \\(cloud metadata\\)"
_CREDS = "credentials \\(user@host\\) are not allowed"
_LOCALNAME = "is a local or internal name"

# (argument, what the refusal must say). "{secret}" is an image in a directory outside
# allowed_dirs, "{allowed}" the allowed directory.
HOSTILE: list[tuple[str, str]] = [
    # ---- paths: traversal, symlinks, absolute paths, special files
    ("../outside/secret.png", _OUTSIDE),
    ("sub/../../outside/secret.png", _OUTSIDE),
    ("./../../../../../../etc/passwd", _OUTSIDE),
    ("{allowed}/../outside/secret.png", _OUTSIDE),
    ("link_out.png", _OUTSIDE),  # a symlink inside allowed_dirs pointing outside
    ("sub/chain.png", _OUTSIDE),  # a chain of symlinks ending outside
    ("linkdir/secret.png", _OUTSIDE),  # a symlinked directory
    ("abs_link.png", _OUTSIDE),
    ("{secret}", _OUTSIDE),  # absolute path outside allowed_dirs
    ("/etc/passwd", _OUTSIDE),
    ("/etc/shadow", _OUTSIDE),
    ("/proc/self/environ", _OUTSIDE),
    ("/dev/zero", _OUTSIDE),
    ("~/.ssh/id_rsa", "no such file in the allowed directories"),
    ("pipe.png", "not a regular file"),  # a FIFO: reading it would block forever
    ("folder.png", "not a regular file"),
    ("", "expected a non-empty file path"),
    ("ok.png\x00.txt", "NUL character"),
    # ---- other schemes
    ("file:///etc/passwd", _SCHEME),
    ("file://localhost/etc/passwd", _SCHEME),
    ("FILE:///{secret}", _SCHEME),
    ("ftp://example.com/cat.png", _SCHEME),
    ("gopher://127.0.0.1:6379/_INFO", _SCHEME),
    ("dict://127.0.0.1:11211/stats", _SCHEME),
    ("jar:http://example.com/a.jar!/x.png", _SCHEME),
    ("javascript:alert(1)", _SCHEME),
    ("data:text/plain;base64,aGVsbG8=", _SCHEME),
    ("data:image/svg+xml;base64,PHN2Zy8+", _SCHEME),
    ("data:application/octet-stream;base64,AAAA", _SCHEME),
    # ---- loopback in every spelling
    ("http://127.0.0.1/a.png", _LOOPBACK),
    ("http://127.0.0.1:8080/admin", _LOOPBACK),
    ("http://2130706433/", _LOOPBACK),  # decimal
    ("http://0x7f000001/", _LOOPBACK),  # hex
    ("http://0x7f.0.0.1/", _LOOPBACK),  # dotted hex
    ("http://0177.0.0.1/", _LOOPBACK),  # octal
    ("http://017700000001/", _LOOPBACK),  # octal, one number
    ("http://127.1/", _LOOPBACK),  # short form
    ("http://127.0.0.1./", _LOOPBACK),  # trailing dot
    ("http://①②⑦.0.0.1/", _LOOPBACK),  # enclosed digits (NFKC)
    ("http://[::1]/", _LOOPBACK),
    ("http://[0:0:0:0:0:0:0:1]/", _LOOPBACK),
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped IPv6 form of 127.0.0.1"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped IPv6 form of 127.0.0.1"),
    ("http://0/", "'this network'"),
    ("http://0.0.0.0:11434/api/tags", "'this network'"),
    ("http://[::]/", "unspecified address"),
    # ---- private, link-local, metadata
    ("http://10.0.0.1/", _PRIVATE),
    ("http://172.16.0.1/", _PRIVATE),
    ("http://192.168.0.1/", _PRIVATE),
    ("http://3232235521/", _PRIVATE),  # 192.168.0.1 in decimal
    ("http://169.254.169.254/latest/meta-data/iam/", _META),
    ("http://2852039166/latest/meta-data/", _META),  # 169.254.169.254 in decimal
    ("http://0xa9.0xfe.0xa9.0xfe/", _META),
    ("http://[::ffff:a9fe:a9fe]/", "IPv4-mapped IPv6 form of 169.254.169.254"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "unique local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "characters a URL host cannot"),
    ("http://100.100.100.200/latest/meta-data/", "shared"),  # Alibaba Cloud metadata
    ("http://metadata.google.internal/computeMetadata/v1/", _LOCALNAME),
    ("http://metadata/", _LOCALNAME),
    # ---- localhost variants
    ("http://localhost/", _LOCALNAME),
    ("http://LOCALHOST:8000/", _LOCALNAME),
    ("http://localhost./", _LOCALNAME),
    ("http://api.localhost/", _LOCALNAME),
    ("http://printer.local/", _LOCALNAME),
    ("http://intranet/", _LOCALNAME),
    # ---- userinfo and parser-confusion tricks
    ("http://good.com@127.0.0.1/", _CREDS),
    ("http://127.0.0.1:80@good.com/", _CREDS),
    ("http://good.com:pass@169.254.169.254/", _CREDS),
    ("http://127.0.0.1#@good.com/", _LOOPBACK),
    ("http://good.com\\@127.0.0.1/", "backslashes"),
    ("http://%31%32%37.0.0.1/", "characters a URL host cannot"),
    ("http://127.0.0.1\t/", "whitespace"),
    ("http:///127.0.0.1/", "no host"),
    # ---- names that resolve inside (hostile DNS)
    ("http://rebind.example.com/cat.png", "resolves to 127.0.0.1"),
    ("http://127.0.0.1.nip.io/", "resolves to 127.0.0.1"),
    ("https://metadata.example.net/", "resolves to 169.254.169.254"),
    ("http://mixed.example.org/", "resolves to 10.0.0.7"),
    ("http://v6.example.com/", "resolves to ::1"),
    ("http://mapped.example.com/", "IPv4-mapped IPv6 form of 192.168.1.1"),
    ("http://unresolvable.example/", "could not resolve host"),
]


def _arg(template: str, box: Sandbox) -> str:
    # ("FILE:///{secret}": the secret's absolute path already starts with "/")
    secret = str(box.secret).lstrip("/") if template.startswith("FILE:") else str(box.secret)
    return template.replace("{allowed}", str(box.allowed)).replace("{secret}", secret)


def _langchain_tool(emu: LocalSiliconCloud, box: Sandbox) -> SiliconVisionTool:
    llm = ChatSiliconVision(model=QWEN, api_key=emu.api_key, base_url=emu.base_url, max_retries=0)
    return SiliconVisionTool(llm=llm, allowed_dirs=[box.allowed], resolver=hostile_dns)


def _llama_tool(emu: LocalSiliconCloud, box: Sandbox) -> Any:
    llm = SiliconVision(model=QWEN, api_key=emu.api_key, base_url=emu.base_url, max_retries=0)
    spec = SiliconVisionToolSpec(llm, allowed_dirs=[box.allowed], resolver=hostile_dns)
    (tool,) = spec.to_tool_list()  # the FunctionTool an agent calls
    return tool


async def _ask(kind: str, tool: Any, image: str, mode: str) -> str:
    if kind == "langchain":
        args = {"image": image, "question": "What is in it?"}
        result = tool.invoke(args) if mode == "sync" else await tool.ainvoke(args)
        return str(result)
    if mode == "sync":
        return str(tool.call(image=image, question="What is in it?").content)
    return str((await tool.acall(image=image, question="What is in it?")).content)


def test_the_hostile_table_is_big_enough() -> None:
    assert len(HOSTILE) >= 40
    assert len({arg for arg, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("kind", ["langchain", "llama_index"])
async def test_hostile_tool_arguments_are_refused_without_reading_or_sending(
    hostile_emu: LocalSiliconCloud,
    sandbox: Sandbox,
    figures: Figures,
    file_watch: FileWatch,
    kind: str,
) -> None:
    tool = (
        _langchain_tool(hostile_emu, sandbox)
        if kind == "langchain"
        else _llama_tool(hostile_emu, sandbox)
    )
    # Warm-up and control: a good image inside allowed_dirs is read (the file watch sees
    # it: the watch is not blind) and answered.
    with file_watch.watching() as opened:
        answer = await _ask(kind, tool, "ok.png", "sync")
    assert "Image 1: 48x48 PNG" in answer and "blue" in answer
    assert str(sandbox.allowed / "ok.png") in opened
    hostile_emu.clear()
    RESOLVED.clear()
    problems: list[str] = []
    refused = 0
    for template, reason in HOSTILE:
        argument = _arg(template, sandbox)
        for mode in ("sync", "async"):
            with file_watch.watching() as opened:
                message = await _ask(kind, tool, argument, mode)
            prefix = "refused" if kind == "langchain" else "Cannot answer: refused"
            if not message.startswith(prefix) or not re.search(reason, message):
                problems.append(f"{argument!r} ({mode}): {message!r} (wanted /{reason}/)")
            elif "Traceback" in message or len(message) > 400:
                problems.append(f"{argument!r} ({mode}): unreadable message {message!r}")
            else:
                refused += 1
            if opened:
                problems.append(f"{argument!r} ({mode}): opened {opened}")
    assert problems == [], "\n".join(problems)
    assert hostile_emu.requests == [] and hostile_emu.file_requests == []
    # The resolver is asked about names only, never about IP literals.
    assert set(RESOLVED) == {*_DNS, "unresolvable.example"}
    figures.record(
        hostile_arguments=len(HOSTILE),
        calls=2 * len(HOSTILE),
        refused=refused,
        files_opened=0,
        requests_sent=0,
        dns_lookups=len(RESOLVED),
    )


def test_secrets_in_refused_urls_are_not_echoed(
    hostile_emu: LocalSiliconCloud, sandbox: Sandbox
) -> None:
    tool = _langchain_tool(hostile_emu, sandbox)
    message = tool.invoke(
        {"image": "http://admin:hunter2@169.254.169.254/?token=abc123", "question": "?"}
    )
    assert "hunter2" not in message and "abc123" not in message and "***@" in message


# --------------------------------------------------------------------------- images


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_claiming(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = idat if idat is not None else zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def _zeros_deflated(megabytes: int) -> bytes:
    compressor = zlib.compressobj(9)
    block = b"\x00" * (1024 * 1024)
    return b"".join(compressor.compress(block) for _ in range(megabytes)) + compressor.flush()


def _with_chunk(image: bytes, kind: bytes, data: bytes) -> bytes:
    return image[:33] + _chunk(kind, data) + image[33:]  # right after IHDR


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _noise(size: tuple[int, int]) -> Image.Image:
    rng = random.Random(7)
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


_BOMB = "decompression bomb refused"
_NOT_IMAGE = "not an image"


def hostile_images() -> dict[str, tuple[bytes, str | None]]:
    """name -> (bytes, the reason it must be refused for; None: a real image, accepted)."""
    noise_png, noise_jpg = _encoded(_noise((128, 128)), "PNG"), _encoded(_noise((128, 128)), "JPEG")
    small = png((32, 32), "red")
    return {
        "bomb.png": (_png_claiming(100_000, 100_000), _BOMB),
        "bomb_just_over_limit.png": (_png_claiming(10_000, 10_000), _BOMB),
        "bomb.gif": (
            b"GIF89a"
            + struct.pack("<HH", 65535, 65535)
            + b"\x00\x00\x00,\x00\x00\x00\x00"
            + struct.pack("<HH", 65535, 65535)
            + b"\x00\x02\x02\x44\x01\x00;",
            _BOMB,
        ),
        "ztxt_bomb.png": (
            _with_chunk(small, b"zTXt", b"Comment\x00\x00" + _zeros_deflated(64)),
            "(?i)Decompressed data too large",  # Pillow < 11 capitalises it
        ),
        "iccp_bomb.png": (
            _with_chunk(small, b"iCCP", b"icc\x00\x00" + _zeros_deflated(64)),
            "(?i)Decompressed data too large",  # Pillow < 11 capitalises it
        ),
        "strip_1x100000.png": (_encoded(Image.new("L", (1, 100_000)), "PNG"), "aspect ratio"),
        "strip_100000x1.png": (_encoded(Image.new("L", (100_000, 1)), "PNG"), "aspect ratio"),
        "truncated.png": (noise_png[: len(noise_png) * 6 // 10], "truncated or corrupt"),
        "truncated.jpg": (noise_jpg[: len(noise_jpg) // 2], "truncated or corrupt"),
        "truncated_header.jpg": (noise_jpg[:300], "corrupt image header"),
        "zero_bytes.png": (b"", "empty \\(0 bytes\\)|zero bytes|must be a non-empty"),
        "text_named.png": (b"hello, I am not an image\n", f"{_NOT_IMAGE}.*looks like text"),
        "html_named.jpg": (b"<html><script>alert(1)</script></html>", "HTML/XML/SVG"),
        "svg_named.png": (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG is not supported"),
        "eps_named.png": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", _NOT_IMAGE),
        "gif_js_polyglot.gif": (
            b"GIF89a/*\x00\x00\x00\x00\x00*/=1;alert(document.domain)//",
            _NOT_IMAGE,
        ),
        # A PDF by its bytes: one-image entry points say so, PDF-taking ones find it broken.
        "pdf_jpeg_polyglot.jpg": (
            b"%PDF-1.4\n1 0 obj<<>>endobj\n" + noise_jpg + b"\n%%EOF",
            "a PDF document, not one image|not a valid PDF",
        ),
        "png_magic_html.png": (b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script>", _NOT_IMAGE),
        "zip_named.png": (b"PK\x03\x04" + b"\x00" * 40, _NOT_IMAGE),
        # Real images: the format is sniffed from the bytes, whatever the name says.
        "jpeg_named.png": (_encoded(Image.new("RGB", (40, 20), "blue"), "JPEG"), None),
        # An IDAT zlib bomb under a small header: decoding stops at 64x64 (bounded).
        "idat_bomb_64x64.png": (_png_claiming(64, 64, _zeros_deflated(64)), None),
        # A real image with a ZIP appended: it is the image it decodes as (see docs).
        "png_plus_zip.png": (small + b"PK\x03\x04" + b"\x00" * 26 + b"evil.php<?php ?>", None),
    }


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile_images")
    for name, (data, _) in hostile_images().items():
        (folder / name).write_bytes(data)
    return folder


_RUNNER = r"""
import json, resource, sys, time, tracemalloc
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from siliconvision.errors import ImageInputError
from siliconvision.images import prepare_image
results = []
for path in sys.argv[3:]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    try:
        p = prepare_image(path, model=sys.argv[2], cache=None)
        outcome = {"ok": True, "mime": p.mime_type, "size": [p.width, p.height]}
    except ImageInputError as exc:
        outcome = {"ok": False, "reason": exc.reason, "message": str(exc)}
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    results.append({"path": path, "seconds": seconds, "traced_peak": peak,
                    "rss_growth_kb": growth, **outcome})
print(json.dumps(results))
"""

ADDRESS_SPACE_LIMIT = 1536 * 1024 * 1024  # the child dies (MemoryError) beyond 1.5 GiB
MAX_RSS_GROWTH_MB = 64
MAX_TRACED_PEAK_MB = 16


def test_hostile_images_fail_clearly_in_bounded_memory_and_time(
    image_dir: Path, figures: Figures
) -> None:
    pytest.importorskip("resource")
    table = hostile_images()
    paths = [str(image_dir / name) for name in table]
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(ADDRESS_SPACE_LIMIT), QWEN, *paths],
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard only
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = {Path(r["path"]).name: r for r in json.loads(done.stdout)}
    problems = []
    for name, (_, reason) in table.items():
        result = results[name]
        if reason is None and not result["ok"]:
            problems.append(f"{name}: refused ({result['message']}), but it is a real image")
        elif reason is not None and (result["ok"] or not re.search(reason, result["message"])):
            problems.append(f"{name}: {result} (wanted /{reason}/)")
        elif reason is not None and not result["message"].startswith(f"image {image_dir}"):
            problems.append(f"{name}: the message does not name the file: {result['message']}")
    assert problems == [], "\n".join(problems)
    worst_rss = max(r["rss_growth_kb"] for r in results.values()) / 1024
    worst_traced = max(r["traced_peak"] for r in results.values()) / 1024 / 1024
    slowest = max(results.values(), key=lambda r: r["seconds"])
    assert worst_rss < MAX_RSS_GROWTH_MB and worst_traced < MAX_TRACED_PEAK_MB, results
    assert results["jpeg_named.png"]["mime"] == "image/jpeg"
    # decoded as 64x64, then sent as the 56x56 Qwen-VL keeps (64 px round to 2 x 28)
    assert results["idat_bomb_64x64.png"]["size"] == [56, 56]
    figures.record(
        hostile_images=len(table),
        refused=sum(1 for r in results.values() if not r["ok"]),
        accepted_real_images=sum(1 for r in results.values() if r["ok"]),
        worst_rss_growth_mb=round(worst_rss, 1),
        worst_traced_peak_mb=round(worst_traced, 2),
        slowest_s=round(slowest["seconds"], 4),
        slowest=Path(slowest["path"]).name,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def test_hostile_images_are_refused_before_any_request_everywhere(
    hostile_emu: LocalSiliconCloud, image_dir: Path, figures: Figures
) -> None:
    """Through both tools (files in allowed_dirs) and both chat models (paths, bytes,
    base64 blocks): an ImageInputError (a ContentError for an empty base64 string), or a
    tool error carrying the reason; no request."""
    hostile_emu.clear()
    box = Sandbox(allowed=image_dir, outside=image_dir, secret=image_dir)
    lc_tool, li_tool = _langchain_tool(hostile_emu, box), _llama_tool(hostile_emu, box)
    lc = ChatSiliconVision(model=QWEN, api_key=hostile_emu.api_key, base_url=hostile_emu.base_url)
    li = SiliconVision(model=QWEN, api_key=hostile_emu.api_key, base_url=hostile_emu.base_url)
    problems: list[str] = []
    refused = 0
    for name, (data, reason) in hostile_images().items():
        if reason is None:
            continue
        path = image_dir / name
        for kind, tool in (("langchain", lc_tool), ("llama_index", li_tool)):
            message = await _ask(kind, tool, name, "async")
            # (an empty file is refused by the file policy before it is opened)
            named = "image" in message or "refused path" in message
            if not re.search(reason, message) or not named:
                problems.append(f"{kind} tool, {name}: {message!r}")
        attempts = [
            (
                "ChatSiliconVision image_block(path)",
                lambda p=path: lc.invoke([HumanMessage(content=[image_block(p), "What?"])]),
            ),
            (
                "ChatSiliconVision base64 block",
                lambda d=data: lc.invoke(
                    [
                        HumanMessage(
                            content=[
                                {"type": "image", "base64": _b64(d), "mime_type": "image/png"},
                                "?",
                            ]
                        )
                    ]
                ),
            ),
            (
                "ChatSiliconVision data URI",
                lambda d=data: lc.invoke(
                    [
                        HumanMessage(
                            content=[
                                {
                                    "type": "image_url",
                                    "image_url": {"url": f"data:image/png;base64,{_b64(d)}"},
                                },
                                "What?",
                            ]
                        )
                    ]
                ),
            ),
            (
                "SiliconVision ImageBlock(path)",
                lambda p=path: li.chat(
                    [ChatMessage(blocks=[ImageBlock(path=p), TextBlock(text="?")])]
                ),
            ),
            (
                "SiliconVision ImageBlock(image)",
                lambda d=data: li.chat(
                    [ChatMessage(blocks=[ImageBlock(image=d), TextBlock(text="?")])]
                ),
            ),
            ("SiliconVision.complete", lambda p=path: li.complete("?", image_documents=[str(p)])),
        ]
        for label, attempt in attempts:
            try:
                attempt()
            except (ImageInputError, ContentError) as exc:  # ContentError: empty base64
                if not re.search(reason, str(exc)):
                    problems.append(f"{label}, {name}: {exc}")
                else:
                    refused += 1
            except Exception as exc:
                problems.append(f"{label}, {name}: {type(exc).__name__}: {exc}")
            else:
                problems.append(f"{label}, {name}: accepted")
    assert problems == [], "\n".join(problems)
    assert hostile_emu.requests == []
    figures.record(refusals=refused, requests_sent=0)
