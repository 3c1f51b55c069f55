"""Messages are untrusted input: no local file read, no URL fetched, unless the program asked.

Proved from the outside, for every entry point and every hostile value: a process-wide
audit hook (``file_watch``) sees no file opened, and the emulator sees no request.

- **Message content** (strings in OpenAI-style dicts, LangChain content blocks,
  LlamaIndex ``ImageBlock(url=...)``/``VideoBlock(url=...)``/node ``image_url``, the
  ``ask_image`` tools' arguments) is tried under three configurations: no opt-in (the
  default), ``allowed_dirs=[allowed]`` (a program that opted in for one directory), and
  ``allowed_dirs=["/"]`` (a reckless one: the file rules alone must stop special files).
- **The program's own choices** (``image_block(path)``, ``ImageBlock(path=...)``,
  ``build_content([Path(...)])``, ``client.ask([...])``, the loader and the reader, the
  CLI's ``ask``) are read, but only regular files under the size cap: special files are
  refused by ``stat`` before anything is opened (a FIFO would block ``open`` forever).
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock, VideoBlock
from llama_index.core.schema import ImageNode

from langchain_siliconvision import (
    ChatSiliconVision,
    SiliconVisionCaptionLoader,
    SiliconVisionTool,
    image_block,
)
from llama_index_siliconvision import (
    SiliconVision,
    SiliconVisionCaptionReader,
    SiliconVisionToolSpec,
)
from siliconvision import SiliconVisionClient, build_content, prepare_messages
from siliconvision.cli import main as cli_main
from siliconvision.errors import CaptionFailureWarning
from siliconvision.guards import DEFAULT_MAX_FILE_BYTES
from siliconvision.testing import LocalSiliconCloud

from .conftest import QWEN, Figures, FileWatch, png

VIDEO_MODEL = "Qwen/Qwen3-VL-8B-Instruct"

# --------------------------------------------------------------------------- sandbox


@dataclass(frozen=True)
class Box:
    root: Path
    allowed: Path
    secret: Path
    fifo_readers: list[str]
    """FIFOs some code opened for reading (the watchdog unblocked it, so nothing hangs)."""

    def values(self, kind: str = "image") -> dict[str, str]:
        """The hostile values, by name (relative ones are relative to ``root``, the CWD).
        For videos, the same targets under video names (a name that is not a video type
        is refused before anything else, which would test less)."""
        if kind == "video":
            clip = self.root / "outside" / "clip.mp4"
            return {
                "absolute": str(clip),
                "relative": "outside/clip.mp4",
                "dotdot": "../outside/clip.mp4",
                "symlink": str(self.allowed / "link_out.mp4"),
                "file_url": clip.as_uri(),
                "dev_zero": str(self.allowed / "zero.mp4"),  # -> /dev/zero
                "fifo": str(self.allowed / "pipe.mp4"),
                "proc": str(self.allowed / "environ.mp4"),  # -> /proc/self/environ
                "over_cap": str(self.allowed / "huge.mp4"),
                "video": "notes/secret.mp4",
            }
        return {
            "absolute": str(self.secret),
            "relative": "outside/secret.png",
            "dotdot": "../outside/secret.png",
            "symlink": str(self.allowed / "link_out.png"),
            "file_url": self.secret.as_uri(),
            "dev_zero": "/dev/zero",
            "fifo": str(self.allowed / "pipe.png"),
            "proc": "/proc/self/environ",
            "over_cap": str(self.allowed / "huge.png"),
            "video": "notes/secret.mp4",
        }


SPECIAL = ("dev_zero", "fifo", "proc", "over_cap")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Box:
    root = tmp_path_factory.mktemp("untrusted")
    allowed, outside, notes = root / "allowed", root / "outside", root / "notes"
    for folder in (allowed / "sub", outside, notes):
        folder.mkdir(parents=True)
    secret = outside / "secret.png"
    secret.write_bytes(png((40, 40), "green"))  # a real image: if read, it would be sent
    (notes / "secret.mp4").write_text("SECRET=hunter2\n")  # the "video"
    (allowed / "ok.png").write_bytes(png((32, 32), "blue"))
    (allowed / "link_out.png").symlink_to(secret)
    (outside / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))  # a real MP4 head
    (allowed / "link_out.mp4").symlink_to(outside / "clip.mp4")
    (allowed / "zero.mp4").symlink_to("/dev/zero")
    (allowed / "environ.mp4").symlink_to("/proc/self/environ")
    readers: list[str] = []
    for name in ("pipe.png", "pipe.mp4"):
        os.mkfifo(allowed / name)
        _unblock_readers(allowed / name, readers)
    for name in ("huge.png", "huge.mp4"):
        with open(allowed / name, "wb") as huge:  # sparse: over the cap, no disk used
            huge.truncate(DEFAULT_MAX_FILE_BYTES + 1)
    return Box(root, allowed, secret, readers)


def _unblock_readers(fifo: Path, readers: list[str]) -> None:
    """A daemon that opens ``fifo`` for writing, over and over: opening it for writing
    waits for a reader, so any code that opens the FIFO is answered at once with an
    empty stream (and recorded) instead of blocking the test forever."""

    def serve() -> None:
        while True:
            with open(fifo, "wb"):
                readers.append(str(fifo))
            time.sleep(0.01)  # (a reader that keeps it open must not make this spin)

    threading.Thread(target=serve, name=f"unblock {fifo.name}", daemon=True).start()


@pytest.fixture
def in_root(box: Box, monkeypatch: pytest.MonkeyPatch) -> Box:
    monkeypatch.chdir(box.root)
    mimetypes.init()  # the standard library reads /etc/mime.types once, on first use
    return box


@pytest.fixture(scope="module")
def emu() -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud() as emulator:
        yield emulator


# --------------------------------------------------------------------------- entry points

Send = Callable[[str, Any], Any]
"""``send(value, dirs)``: one call through an entry point, with ``allowed_dirs=dirs``."""


def _core(emu: LocalSiliconCloud, dirs: Any, model: str = QWEN) -> SiliconVisionClient:
    return SiliconVisionClient(
        api_key=emu.api_key, base_url=emu.base_url, max_retries=0, model=model, allowed_dirs=dirs
    )


def _lc(emu: LocalSiliconCloud, dirs: Any, model: str = QWEN) -> ChatSiliconVision:
    return ChatSiliconVision(
        model=model,
        api_key=emu.api_key,
        base_url=emu.base_url,
        max_retries=0,
        allowed_dirs=list(dirs or []),
    )


def _li(emu: LocalSiliconCloud, dirs: Any, model: str = QWEN) -> SiliconVision:
    return SiliconVision(
        model=model,
        api_key=emu.api_key,
        base_url=emu.base_url,
        max_retries=0,
        allowed_dirs=list(dirs or []),
    )


def _file_url(value: str) -> str:
    """``value`` as a ``file:`` URL (LlamaIndex's ``ImageBlock.url`` takes only URLs)."""
    return value if value.startswith("file:") else Path(os.path.abspath(value)).as_uri()


def _user(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [part, "What is in it?"]}]


def _image_url(value: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": value}}


def _video_url(value: str) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": value}}


def message_entry_points(emu: LocalSiliconCloud) -> dict[str, tuple[str, Send]]:
    """name -> (what the value is sent as: "image"/"video", send)."""

    def lc_tool(dirs: Any) -> SiliconVisionTool:
        return SiliconVisionTool(llm=_lc(emu, None), allowed_dirs=list(dirs or []))

    def li_tool(dirs: Any) -> Any:
        (tool,) = SiliconVisionToolSpec(
            _li(emu, None), allowed_dirs=list(dirs or [])
        ).to_tool_list()
        return tool

    return {
        "client.chat image_url": ("image", lambda v, d: _core(emu, d).chat(_user(_image_url(v)))),
        "client.chat video_url": (
            "video",
            lambda v, d: _core(emu, d, VIDEO_MODEL).chat(_user(_video_url(v))),
        ),
        "client.ask file: URL": ("image", lambda v, d: _core(emu, d).ask([_file_url(v)], "?")),
        "build_content": (
            "image",
            lambda v, d: build_content([_image_url(v)], model=QWEN, allowed_dirs=d),
        ),
        "prepare_messages video": (
            "video",
            lambda v, d: prepare_messages(_user(_video_url(v)), model=VIDEO_MODEL, allowed_dirs=d),
        ),
        "ChatSiliconVision v1 url": (
            "image",
            lambda v, d: _lc(emu, d).invoke(
                [HumanMessage(content=[{"type": "image", "url": v}, "?"])]
            ),
        ),
        "ChatSiliconVision image_url": (
            "image",
            lambda v, d: _lc(emu, d).invoke([HumanMessage(content=[_image_url(v), "?"])]),
        ),
        "ChatSiliconVision v0 source_type url": (
            "image",
            lambda v, d: _lc(emu, d).invoke(
                [HumanMessage(content=[{"type": "image", "source_type": "url", "url": v}, "?"])]
            ),
        ),
        "ChatSiliconVision.ainvoke": (
            "image",
            lambda v, d: asyncio.run(
                _lc(emu, d).ainvoke([HumanMessage(content=[{"type": "image", "url": v}, "?"])])
            ),
        ),
        "ChatSiliconVision video": (
            "video",
            lambda v, d: _lc(emu, d, VIDEO_MODEL).invoke(
                [HumanMessage(content=[{"type": "video", "url": v}, "?"])]
            ),
        ),
        "SiliconVision ImageBlock(url=file:)": (
            "image",
            lambda v, d: _li(emu, d).chat(
                [ChatMessage(blocks=[ImageBlock(url=_file_url(v)), TextBlock(text="?")])]
            ),
        ),
        # (ImageNode: LlamaIndex's ImageDocument(image_url=...) itself GETs the URL, and
        # opens an image_path, when it is constructed, before any of our code runs.)
        "SiliconVision ImageNode(image_url=)": (
            "image",
            lambda v, d: _li(emu, d).complete("?", image_documents=[ImageNode(image_url=v)]),
        ),
        "SiliconVision VideoBlock(url=file:)": (
            "video",
            lambda v, d: _li(emu, d, VIDEO_MODEL).chat(
                [ChatMessage(blocks=[VideoBlock(url=_file_url(v)), TextBlock(text="?")])]
            ),
        ),
        "SiliconVisionTool": (
            "image",
            lambda v, d: lc_tool(d).invoke({"image": v, "question": "?"}),
        ),
        "SiliconVisionTool async": (
            "image",
            lambda v, d: asyncio.run(lc_tool(d).ainvoke({"image": v, "question": "?"})),
        ),
        "SiliconVisionToolSpec": (
            "image",
            lambda v, d: li_tool(d).call(image=v, question="?").content,
        ),
        "SiliconVisionToolSpec async": (
            "image",
            lambda v, d: asyncio.run(li_tool(d).acall(image=v, question="?")).content,
        ),
    }


# --------------------------------------------------------------------------- expectations

_NO_OPT_IN = r"allowed_dirs=\[\.\.\.\]"
_TOOL_NO_DIRS = r"reading local files is disabled"
_TOOL_SCHEME = r"give a local file path or an http\(s\) URL"
_OUTSIDE = r"outside the allowed directories|no such file in the allowed directories"
_FIFO = r"not a regular file \(a FIFO\)"
_CAP = r"-byte limit"
_BY_FILE_RULES = {
    "dev_zero": r"in /dev \(system state",
    "fifo": _FIFO,
    "proc": r"in /proc \(system state",
    "over_cap": _CAP,
}


def _expected(entry: str, config: str, name: str) -> str:
    tool = "Tool" in entry
    if config == "none":
        if tool:
            return _TOOL_SCHEME if name == "file_url" else _TOOL_NO_DIRS
        return _NO_OPT_IN
    if config == "root":
        return _BY_FILE_RULES[name]
    # allowed_dirs=[allowed]: /dev/zero and /proc (or links to them) are outside it
    if tool and name == "file_url":
        return _TOOL_SCHEME
    if name == "fifo":
        return _FIFO
    if name == "over_cap":
        return _CAP
    return _OUTSIDE


def _outcome(send: Send, value: str, dirs: Any) -> tuple[bool, str]:
    """(refused?, the refusal text). Tools answer with text; everything else raises."""
    try:
        answer = send(value, dirs)
    except Exception as exc:
        return True, f"{type(exc).__name__}: {exc}"
    text = str(answer)
    refused = text.startswith(("refused", "cannot use image", "Cannot answer:"))
    return refused, text


CONFIGS = {"none": None, "allowed": "ALLOWED", "root": ["/"]}


def test_hostile_message_content_is_never_read_or_sent(
    in_root: Box, emu: LocalSiliconCloud, file_watch: FileWatch, figures: Figures
) -> None:
    box = in_root
    entries = message_entry_points(emu)
    # Control, through the same watch: opted in, a file inside allowed_dirs is read and
    # sent (the watch is not blind, the policy does not refuse everything).
    with file_watch.watching() as opened:
        answer = _lc(emu, [box.allowed]).invoke(
            [HumanMessage(content=[{"type": "image", "url": "ok.png"}, "?"])]
        )
    assert "32x32 PNG" in answer.text and "blue" in answer.text
    assert str((box.allowed / "ok.png").resolve()) in opened
    emu.clear()

    problems: list[str] = []
    cells = refused = 0
    for config, dirs in CONFIGS.items():
        dirs = [box.allowed] if dirs == "ALLOWED" else dirs
        for entry, (kind, send) in entries.items():
            for name, value in box.values(kind).items():
                if config == "root" and name not in SPECIAL:
                    continue  # with "/" allowed, those paths are legitimately readable
                cells += 1
                with file_watch.watching() as opened:
                    was_refused, text = _outcome(send, value, dirs)
                wanted = _expected(entry, config, name)
                where = f"[{config}] {entry} <- {name} {value!r}"
                if not was_refused:
                    problems.append(f"{where}: not refused: {text[:200]!r}")
                elif not re.search(wanted, text):
                    problems.append(f"{where}: {text[:300]!r} (wanted /{wanted}/)")
                else:
                    refused += 1
                if opened:
                    problems.append(f"{where}: opened {opened}")
    assert problems == [], "\n".join(problems)
    assert box.fifo_readers == []
    assert emu.requests == [] and emu.file_requests == []
    figures.record(
        entry_points=len(entries),
        hostile_values=len(box.values()),
        configurations=len(CONFIGS),
        cells=cells,
        refused=refused,
        files_opened=0,
        requests_sent=0,
    )


# --------------------------------------------------------------------------- explicit choices


def explicit_entry_points(emu: LocalSiliconCloud) -> dict[str, Send]:
    """The program's own choice of a file: read, but only a regular file under the cap."""

    def loader(value: str, _: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CaptionFailureWarning)
            return SiliconVisionCaptionLoader([value], llm=_lc(emu, None)).load()

    def reader(value: str, _: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CaptionFailureWarning)
            return SiliconVisionCaptionReader(_li(emu, None)).load_data([value])

    def cli(value: str, _: Any) -> Any:
        code = cli_main(["ask", value, "-q", "What is in it?"])
        if code != 0:
            raise RuntimeError(f"exit code {code}")
        return code

    return {
        "image_block(path)": lambda v, _: image_block(v),
        "ImageBlock(path=...)": lambda v, _: _li(emu, None).chat(
            [ChatMessage(blocks=[ImageBlock(path=v), TextBlock(text="?")])]
        ),
        "build_content([Path])": lambda v, _: build_content([Path(v)], model=QWEN),
        "client.ask([path])": lambda v, _: _core(emu, None).ask([v], "?"),
        "SiliconVisionCaptionLoader": loader,
        "SiliconVisionCaptionReader": reader,
        "CLI ask": cli,
    }


# LlamaIndex's own ImageBlock validation (pydantic FilePath) refuses what is not a file,
# before our code runs; SiliconVision still refuses /proc itself. The loader and reader
# refuse a path that is neither a file nor a directory when listing their inputs.
_EXPLICIT_ALSO = r"not point to a file|neither a file nor a directory|exit code 2"


def test_special_files_the_program_names_are_refused_before_opening(
    in_root: Box,
    emu: LocalSiliconCloud,
    file_watch: FileWatch,
    figures: Figures,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    box = in_root
    monkeypatch.setenv("SILICONFLOW_API_KEY", emu.api_key)  # the CLI talks to this emulator
    monkeypatch.setenv("SILICONFLOW_BASE_URL", emu.base_url)
    emu.clear()
    problems: list[str] = []
    cells = refused = 0
    values = box.values()
    entries = explicit_entry_points(emu)
    for entry, send in entries.items():
        for name in (*SPECIAL, "file_url"):
            value = values[name]
            cells += 1
            with file_watch.watching() as opened:
                was_refused, text = _outcome(send, value, None)
            err = capsys.readouterr().err
            wanted = (
                rf"{_NO_OPT_IN}|does not exist|not a file: URL|no such file|not point to a file"
                if name == "file_url"
                else rf"{_BY_FILE_RULES[name]}|{_EXPLICIT_ALSO}"
            )
            where = f"{entry} <- {name} {value!r}"
            if not was_refused:
                problems.append(f"{where}: not refused: {text[:200]!r}")
            elif not re.search(wanted, f"{text}\n{err}"):
                problems.append(f"{where}: {text[:300]!r} {err[:200]!r} (wanted /{wanted}/)")
            else:
                refused += 1
            if opened:
                problems.append(f"{where}: opened {opened}")
    assert problems == [], "\n".join(problems)
    assert box.fifo_readers == []
    assert emu.requests == []
    figures.record(
        entry_points=len(entries),
        hostile_values=len(SPECIAL) + 1,
        cells=cells,
        refused=refused,
        files_opened=0,
        requests_sent=0,
    )


def test_paths_the_program_names_are_read(
    in_root: Box, emu: LocalSiliconCloud, file_watch: FileWatch
) -> None:
    """The other side of the policy: a Path, Image(...) or image_block(path) given by the
    program is its own choice, wherever the file is (no allowed_dirs needed)."""
    box = in_root
    emu.clear()
    client = SiliconVisionClient(api_key=emu.api_key, base_url=emu.base_url, image_cache=None)
    for value in ("outside/secret.png", str(box.secret), str(box.allowed / "link_out.png")):
        with file_watch.watching() as opened:
            answer = client.ask([value], "?").content
        assert "40x40 PNG" in answer and "green" in answer
        assert str(box.secret.resolve()) in opened
    block = image_block("allowed/../outside/secret.png")
    assert block["mime_type"] == "image/png"
    assert len(emu.requests) == 3


def test_the_size_cap_is_configurable_and_checked_before_opening(
    in_root: Box, emu: LocalSiliconCloud, file_watch: FileWatch
) -> None:
    box = in_root
    emu.clear()
    size = (box.allowed / "ok.png").stat().st_size
    small = SiliconVisionClient(
        api_key=emu.api_key,
        base_url=emu.base_url,
        allowed_dirs=[box.allowed],
        max_file_bytes=size - 1,
    )
    for attempt in (
        lambda: small.ask([str(box.allowed / "ok.png")], "?"),  # the program's own path
        lambda: small.chat(_user(_image_url("ok.png"))),  # message content, opted in
    ):
        with file_watch.watching() as opened, pytest.raises(ValueError, match=_CAP):
            attempt()
        assert opened == []
    roomy = SiliconVisionClient(
        api_key=emu.api_key, base_url=emu.base_url, allowed_dirs=[box.allowed], max_file_bytes=size
    )
    assert "32x32 PNG" in roomy.chat(_user(_image_url("ok.png"))).content
    assert len(emu.requests) == 1
