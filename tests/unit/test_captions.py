"""The caption batch engine, against LocalSiliconCloud over real HTTP (no mocks)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import BaseModel

from siliconvision.captions import (
    CaptionRecord,
    acaption_images,
    caption_images,
    iter_image_files,
    load_done,
)
from siliconvision.client import MissingAPIKeyError, SiliconVisionClient
from siliconvision.testing import LocalSiliconCloud, ReceivedRequest

COLOURS = {
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
}


def make_images(directory: Path, count: int) -> list[tuple[Path, int, int, str]]:
    """``count`` solid PNGs, each with its own size (so requests can be told apart)."""
    directory.mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    made = []
    for i in range(count):
        colour = names[i % len(names)]
        width, height = 40 + i, 30 + 2 * i
        path = directory / f"img_{i:03d}.png"
        Image.new("RGB", (width, height), COLOURS[colour]).save(path)
        made.append((path, width, height, colour))
    return made


@pytest.fixture
def emu() -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud() as emulator:
        yield emulator


@pytest.fixture
def client(emu: LocalSiliconCloud) -> Iterator[SiliconVisionClient]:
    # No SDK retries: caption_images' own attempts are what is under test, and the
    # SDK's backoff (0.5 s and up) would only slow the suite down.
    with SiliconVisionClient(
        api_key=emu.api_key, base_url=emu.base_url, max_retries=0, timeout=10
    ) as c:
        yield c


def chat_requests(emu: LocalSiliconCloud) -> list[ReceivedRequest]:
    return [r for r in emu.requests if r.path.endswith("/chat/completions")]


class InFlight:
    """A server-side counter: the emulator's responder holds each request briefly and
    records how many were being answered at once."""

    def __init__(self, hold: float = 0.03) -> None:
        self.hold = hold
        self.current = 0
        self.max = 0
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.current += 1
            self.calls += 1
            self.max = max(self.max, self.current)
        time.sleep(self.hold)
        with self._lock:
            self.current -= 1
        return None  # the default reply


# --------------------------------------------------------------------------- files


def test_iter_image_files_expands_sorts_dedups_and_keeps_given_order(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "b_sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for name in ["z.PNG", "a.jpg", "notes.txt", ".secret.png", "b_sub/c.webp", ".hidden/d.png"]:
        (root / name).write_bytes(b"x")
    extra = tmp_path / "extra.gif"
    extra.write_bytes(b"x")
    odd = tmp_path / "scan.dat"  # named explicitly: kept whatever its suffix
    odd.write_bytes(b"x")

    found = iter_image_files([extra, root, str(root / "a.jpg"), odd, extra])
    assert found == [extra, root / "a.jpg", root / "b_sub" / "c.webp", root / "z.PNG", odd]
    assert iter_image_files([root], recursive=False) == [root / "a.jpg", root / "z.PNG"]
    assert iter_image_files([root]) == iter_image_files([root])  # deterministic


def test_iter_image_files_names_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.png"):
        iter_image_files([tmp_path, tmp_path / "nowhere.png"])


# --------------------------------------------------------------------------- records


def test_records_unique_with_metadata_from_the_prepared_image(
    tmp_path: Path, emu: LocalSiliconCloud, client: SiliconVisionClient
) -> None:
    images = make_images(tmp_path, 6)
    paths = [p for p, *_ in images]
    same_file = f"{tmp_path}/./{paths[1].name}"  # the same file, spelled differently
    seen: list[CaptionRecord] = []
    records = list(
        caption_images(client, [*paths, paths[0], same_file], concurrency=3, on_record=seen.append)
    )

    assert sorted(r.path for r in records) == sorted(str(p) for p in paths)
    assert seen == records
    by_path = {r.path: r for r in records}
    for path, width, height, colour in images:
        record = by_path[str(path)]
        assert record.ok and record.error is None
        assert (record.width, record.height, record.mime_type) == (width, height, "image/png")
        assert record.byte_size == path.stat().st_size  # small PNG: sent as it is
        assert record.model == client.model and record.attempts == 1
        # The emulator's answer proves this image (not another) reached it.
        assert f"Image 1: {width}x{height} PNG" in (record.caption or "")
        assert f"({colour})" in (record.caption or "")
    requests = chat_requests(emu)
    assert len(requests) == 6
    assert sorted((r.images[0].width, r.images[0].height) for r in requests) == sorted(
        (w, h) for _, w, h, _ in images
    )
    assert all(len(r.images) == 1 and r.images[0].detail == "high" for r in requests)


def test_concurrency_one_keeps_input_order_and_passes_model_and_detail(
    tmp_path: Path, emu: LocalSiliconCloud, client: SiliconVisionClient
) -> None:
    paths = [p for p, *_ in make_images(tmp_path, 4)][::-1]
    records = list(
        caption_images(
            client,
            paths,
            concurrency=1,
            model="OpenGVLab/InternVL2-26B",
            detail="low",
            prompt="Caption it.",
        )
    )
    assert [r.path for r in records] == [str(p) for p in paths]
    requests = chat_requests(emu)
    assert {r.model for r in requests} == {"OpenGVLab/InternVL2-26B"}
    assert {r.images[0].detail for r in requests} == {"low"}
    assert all(r.model == "OpenGVLab/InternVL2-26B" for r in records)
    assert all(r.caption and r.caption.endswith('Text: "Caption it."') for r in records)


def test_concurrency_bound_is_respected_and_used(
    tmp_path: Path, emu: LocalSiliconCloud, client: SiliconVisionClient
) -> None:
    counter = InFlight()
    emu.set_responder(counter)
    paths = [p for p, *_ in make_images(tmp_path, 12)]
    records = list(caption_images(client, paths, concurrency=3))
    assert len(records) == 12 and all(r.ok for r in records)
    assert counter.calls == 12
    assert counter.max <= 3
    assert counter.max >= 2  # it really runs in parallel


def test_lazy_and_closing_early_starts_nothing_new(
    tmp_path: Path, emu: LocalSiliconCloud, client: SiliconVisionClient
) -> None:
    paths = [p for p, *_ in make_images(tmp_path, 10)]
    records = caption_images(client, paths, concurrency=2)
    assert emu.requests == []  # nothing runs before iteration
    first = next(records)
    assert first.ok
    records.close()  # type: ignore[attr-defined]
    time.sleep(0.2)  # let the requests already in flight land
    # 2 started at once, 1 more when the first finished: nothing after close().
    assert len(chat_requests(emu)) <= 3


def test_a_bad_image_is_recorded_not_fatal(
    tmp_path: Path, emu: LocalSiliconCloud, client: SiliconVisionClient
) -> None:
    good = [p for p, *_ in make_images(tmp_path, 3)]
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not a picture")
    missing = tmp_path / "gone.jpg"
    records = {
        r.path: r for r in caption_images(client, [good[0], not_image, good[1], missing, good[2]])
    }
    assert len(records) == 5
    bad = records[str(not_image)]
    assert not bad.ok and bad.caption is None and "not an image" in (bad.error or "")
    assert str(not_image) in (bad.error or "")
    assert (bad.attempts, bad.width, bad.mime_type) == (0, None, None)
    assert not records[str(missing)].ok and "gone.jpg" in (records[str(missing)].error or "")
    assert all(records[str(p)].ok for p in good)
    assert len(chat_requests(emu)) == 3  # bad input never reaches the server


# --------------------------------------------------------------------------- faults


def test_retryable_errors_are_retried_then_recorded(
    tmp_path: Path, emu: LocalSiliconCloud, client: SiliconVisionClient
) -> None:
    paths = [p for p, *_ in make_images(tmp_path, 3)]
    emu.fail_next(429, count=2)  # image 0: two rate limits, then success
    records = list(
        caption_images(client, paths[:1], concurrency=1, max_attempts=3, retry_backoff=0.001)
    )
    assert records[0].ok and records[0].attempts == 3

    emu.fail_next(503, count=3)  # image 1: out of attempts -> recorded
    emu.fail_next(400)  # image 2: not retryable -> recorded after one request
    records = list(
        caption_images(client, paths[1:], concurrency=1, max_attempts=3, retry_backoff=0.001)
    )
    overloaded, bad_request = records
    assert not overloaded.ok and overloaded.attempts == 3
    assert "HTTP 503" in (overloaded.error or "") and "50505" in (overloaded.error or "")
    assert overloaded.width is not None  # metadata kept: the image itself was fine
    assert not bad_request.ok and bad_request.attempts == 1
    assert "HTTP 400" in (bad_request.error or "")
    assert len(chat_requests(emu)) == 3 + 3 + 1


def test_fault_rate_every_image_captioned_once(
    tmp_path: Path, emu: LocalSiliconCloud, client: SiliconVisionClient
) -> None:
    emu.set_fault_rate(0.3, statuses=(429, 503), seed=3)
    paths = [p for p, *_ in make_images(tmp_path, 24)]
    records = list(
        caption_images(client, paths, concurrency=4, max_attempts=10, retry_backoff=0.001)
    )
    assert sorted(r.path for r in records) == sorted(map(str, paths))
    assert all(r.ok for r in records)
    requests = chat_requests(emu)
    assert sum(r.attempts for r in records) == len(requests)
    assert sum(1 for r in requests if r.status == 200) == 24  # one success per image
    assert len(requests) > 24  # faults did happen and were retried


# --------------------------------------------------------------------------- async


async def test_async_variant_bounded_retried_and_complete(
    tmp_path: Path, emu: LocalSiliconCloud, client: SiliconVisionClient
) -> None:
    counter = InFlight()
    emu.set_responder(counter)
    emu.fail_next(429)
    emu.fail_next(503)
    images = make_images(tmp_path, 9)
    paths = [p for p, *_ in images]
    not_image = tmp_path / "bad.png"
    not_image.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    seen: list[CaptionRecord] = []
    records = [
        r
        async for r in acaption_images(
            client,
            [*paths, not_image],
            concurrency=3,
            retry_backoff=0.001,
            on_record=seen.append,
        )
    ]
    await client.aclose()
    assert seen == records and len(records) == 10
    by_path = {r.path: r for r in records}
    assert not by_path[str(not_image)].ok and by_path[str(not_image)].attempts == 0
    for path, width, height, colour in images:
        record = by_path[str(path)]
        assert record.ok, record.error
        caption = record.caption or ""
        assert f"{width}x{height} PNG" in caption and colour in caption
    assert sum(r.attempts for r in records) == len(chat_requests(emu)) == 11
    assert 2 <= counter.max <= 3


async def test_async_close_early(
    tmp_path: Path, emu: LocalSiliconCloud, client: SiliconVisionClient
) -> None:
    paths = [p for p, *_ in make_images(tmp_path, 8)]
    stream = acaption_images(client, paths, concurrency=2)
    assert emu.requests == []
    first = await stream.__anext__()
    assert first.ok
    await stream.aclose()  # type: ignore[attr-defined]
    await client.aclose()
    assert len(chat_requests(emu)) <= 3


# --------------------------------------------------------------------------- misc


def test_missing_key_fails_once_on_first_next(tmp_path: Path, emu: LocalSiliconCloud) -> None:
    paths = [p for p, *_ in make_images(tmp_path, 2)]
    client = SiliconVisionClient(base_url=emu.base_url)  # no key in the env (conftest)
    records = caption_images(client, paths)  # lazy: no error yet
    with pytest.raises(MissingAPIKeyError):
        next(records)
    with pytest.raises(ValueError, match="concurrency"):
        caption_images(client, paths, concurrency=0)
    with pytest.raises(ValueError, match="does not take images"):  # before any image is read
        caption_images(client, paths, model="Qwen/Qwen2.5-7B-Instruct")
    assert emu.requests == []


def test_load_done_tolerates_a_truncated_last_line(tmp_path: Path) -> None:
    ok = CaptionRecord(
        path="a.png", caption="A red disc.", error=None, model="m",
        mime_type="image/png", width=4, height=4, byte_size=70, attempts=1,
        backend="siliconcloud", key="key-a",
    )  # fmt: skip
    failed = CaptionRecord(
        path="b.png", caption=None, error="HTTP 503", model="m", attempts=3, key="key-b",
        backend="siliconcloud",
    )  # fmt: skip
    retried_ok = dataclasses.replace(failed, caption="Blue.", error=None, attempts=1)
    cut = json.dumps(dataclasses.replace(ok, path="c.png", key="key-c").to_json())
    out = tmp_path / "captions.jsonl"
    out.write_text(
        "\n".join(json.dumps(r.to_json()) for r in (ok, failed)) + "\n" + cut[: len(cut) // 2]
    )
    assert load_done(out) == {"key-a"}
    out.write_text(out.read_text() + "\n" + json.dumps(retried_ok.to_json()) + "\n\nnot json\n")
    assert load_done(out) == {"key-a", "key-b"}
    assert load_done(out, backend="siliconcloud") == {"key-a", "key-b"}
    assert load_done(out, backend="emulator") == set()  # another backend's work never counts
    assert load_done(tmp_path / "missing.jsonl") == set()
    assert CaptionRecord.from_json(ok.to_json()) == ok
    assert CaptionRecord.from_json({**failed.to_json(), "extra": 1}) == failed
    assert not failed.ok and ok.ok
    with pytest.raises(ValueError):
        CaptionRecord.from_json({"caption": "no path"})
    # A record of an older version (no key) is never taken as done.
    legacy = {"path": "d.png", "caption": "Old.", "error": None, "model": "m"}
    out.write_text(json.dumps(legacy) + "\n")
    assert load_done(out) == set()


# --------------------------------------------------------------------------- schema


class _Seen(BaseModel):
    images: list[dict[str, Any]]
    text: list[str]


def test_schema_answers_are_validated_retried_and_recorded(
    tmp_path: Path, emu: LocalSiliconCloud, client: SiliconVisionClient
) -> None:
    (path, width, height, _), (other, *_) = make_images(tmp_path, 2)
    (record,) = caption_images(client, [path], schema=_Seen, max_attempts=2, retry_backoff=0)
    assert record.ok and record.attempts == 1
    seen = _Seen.model_validate_json(record.caption or "")
    assert (seen.images[0]["width"], seen.images[0]["height"]) == (width, height)
    (request,) = chat_requests(emu)
    assert request.body["response_format"] == {"type": "json_object"}
    assert record.prompt is not None and "JSON schema" in record.prompt
    # An answer that is not JSON is retried; one off the schema, to the last attempt.
    emu.clear()
    emu.script_reply("Sorry, no JSON here.")
    (record,) = caption_images(client, [other], schema=_Seen, max_attempts=2, retry_backoff=0)
    assert record.ok and record.attempts == 2
    strict = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    emu.clear()
    (record,) = caption_images(client, [path], schema=strict, max_attempts=2, retry_backoff=0)
    assert not record.ok and record.caption is None and record.attempts == 2
    assert record.error is not None and "does not follow the schema" in record.error
    assert "'title'" in record.error and len(chat_requests(emu)) == 2
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        caption_images(client, [path], schema={"type": 12})
    with pytest.raises(ValueError, match="pydantic model class or a JSON schema"):
        caption_images(client, [path], schema="title: str")


def test_errors_never_carry_base64() -> None:
    from siliconvision.captions import scrub_base64

    payload = "A" * 5000
    text = f"image data:image/png;base64,{payload}: bad; also {payload}== and 'short'"
    assert scrub_base64(text) == "image <base64 elided>: bad; also <base64 elided> and 'short'"
