"""``caption_dataset`` on a local Ray (2 CPUs, 127.0.0.1) against LocalSiliconCloud.

Small datasets, few executions (each one starts actors): every row exactly once, errors
as rows, faults retried, one limiter for two workers (windowed counts read from the
emulator), resumption, schema output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from siliconvision import RateLimits
from siliconvision.captions import (
    DEFAULT_CAPTION_PROMPT,
    ImageItem,
    caption_images,
    caption_key,
    image_identity,
)
from siliconvision.client import MissingAPIKeyError, SiliconVisionClient
from siliconvision.errors import ContentError
from siliconvision.testing import LocalSiliconCloud, PdfPage, make_pdf, rate_limit_body

from .conftest import FAST, QWEN, make_pngs, width_in

pytestmark = pytest.mark.usefixtures("ray_local")


def _caption(ds: Any, emu: LocalSiliconCloud, **kwargs: Any) -> list[dict[str, Any]]:
    from siliconvision.ray_data import caption_dataset

    kwargs.setdefault("concurrency", 1)
    kwargs.setdefault("client_options", FAST)
    out = caption_dataset(ds, model=QWEN, api_key=emu.api_key, base_url=emu.base_url, **kwargs)
    rows: list[dict[str, Any]] = out.take_all()
    return rows


def _chat(emu: LocalSiliconCloud) -> list[Any]:
    return [r for r in emu.requests if r.path.endswith("/chat/completions")]


def test_bytes_rows_once_each_with_faults_retried_and_bad_images_as_rows(
    ray_local: Any, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    files = make_pngs(tmp_path / "photos", 8)
    (tmp_path / "photos" / "broken.png").write_text("not an image at all")
    (tmp_path / "photos" / "scan.pdf").write_bytes(make_pdf([PdfPage(), PdfPage()]))
    emu.fail_next(503)
    emu.fail_next(429, rate_limit_body("TPM"))
    emu.fail_next(503)
    ds = ray_local.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    rows = _caption(ds, emu, concurrency=2, max_attempts=3)

    assert sorted(Path(r["path"]).name for r in rows) == sorted(
        [f.name for f in files] + ["broken.png", "scan.pdf"]
    )  # every row exactly once
    assert all("bytes" not in row for row in rows)  # the raw bytes are not carried on
    by_name = {Path(r["path"]).name: r for r in rows}
    bad = by_name.pop("broken.png")
    assert bad["caption"] is None and "not an image" in bad["error"] and bad["attempts"] == 0
    pdf = by_name.pop("scan.pdf")  # a row is one image: a PDF is refused by name, as a row
    assert pdf["caption"] is None and pdf["attempts"] == 0
    assert "a PDF document: caption_dataset captions one image per row" in pdf["error"]
    for file in files:
        row = by_name[file.name]
        assert row["error"] is None, row["error"]
        assert width_in(row["caption"]) == 40 + int(file.stem.split("_")[1])  # its own image
        assert row["backend"] == "emulator" and row["prompt_tokens"] > 0
        # row_key: the one key rule of the core, from the file's bytes
        assert row["row_key"] == caption_key(
            image_identity(file.read_bytes()), model=QWEN, prompt=DEFAULT_CAPTION_PROMPT,
            detail="high",
        )  # fmt: skip
    assert sum(r["attempts"] for r in by_name.values()) == 8 + 3  # 3 faults, each retried
    assert [r.status for r in _chat(emu)].count(200) == 8
    assert len(_chat(emu)) == 11
    # One key rule: the CLI's record of the same file has the same key.
    client = SiliconVisionClient(api_key=emu.api_key, base_url=emu.base_url, model=QWEN)
    (record,) = caption_images(client, [files[0]])
    assert record.key == by_name[files[0].name]["row_key"]
    assert record.key == caption_key(
        ImageItem.from_path(files[0]).identity, model=QWEN, prompt=DEFAULT_CAPTION_PROMPT,
        detail="high",
    )  # fmt: skip


def test_url_rows_pass_urls_on_and_refuse_paths(
    ray_local: Any, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    (file,) = make_pngs(tmp_path, 1)
    served = emu.serve_url("https://images.example.com/a.png", file.read_bytes())
    rows = _caption(
        ray_local.data.from_items(
            [
                {"url": served, "id": 1},
                {"url": "https://images.example.com/missing.png", "id": 2},  # the server: 400
                {"url": str(file), "id": 3},  # a local path in a url column: never read
            ]
        ),
        emu,
    )
    by_id = {r["id"]: r for r in rows}
    assert by_id[1]["error"] is None and width_in(by_id[1]["caption"]) == 40
    assert "HTTP 400" in by_id[2]["error"] and by_id[2]["attempts"] == 1  # not retried
    assert "not an http(s) URL" in by_id[3]["error"] and by_id[3]["attempts"] == 0
    assert sorted(r.body["messages"][0]["content"][0]["image_url"]["url"] for r in _chat(emu)) == [
        served,
        "https://images.example.com/missing.png",
    ]  # passed on as URLs; the local path never left the worker
    assert by_id[1]["row_key"] == caption_key(
        image_identity(served), model=QWEN, prompt=DEFAULT_CAPTION_PROMPT, detail="high"
    )
    assert [r["url"] for r in rows] == [served, "https://images.example.com/missing.png", str(file)]


def test_decoded_arrays_from_read_images(
    ray_local: Any, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    make_pngs(tmp_path / "photos", 3)
    ds = ray_local.data.read_images(str(tmp_path / "photos"), include_paths=True)
    rows = _caption(ds, emu, keep_image=True)
    assert sorted(width_in(r["caption"]) for r in rows) == [40, 41, 42]
    for row in rows:
        assert row["error"] is None
        assert row["image"].shape == (30, width_in(row["caption"]), 3)  # kept: it was asked
    assert len({r["row_key"] for r in rows}) == 3


def test_two_workers_sharing_one_limiter_stay_within_the_windows(
    ray_local: Any, tmp_path: Path
) -> None:
    # 1-second windows: 8 requests and 1,600 tokens per window (a row costs about 100).
    limits = RateLimits(rpm=480, tpm=96_000, window=1.0)
    files = make_pngs(tmp_path / "photos", 24)
    ds = ray_local.data.from_items([{"path": str(f)} for f in files])
    with LocalSiliconCloud(rate_limits=limits) as emu:
        rows = _caption(ds, emu, concurrency=2, rate_limits=limits, max_attempts=1)
        stats = emu.rate_stats()[QWEN]
    assert sorted(r["path"] for r in rows) == sorted(str(f) for f in files)
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows if r["error"]]
    assert stats.request_cap is not None and stats.token_cap is not None
    assert stats.refused == 0 and stats.accepted == 24
    assert stats.peak_requests <= stats.request_cap
    assert stats.peak_tokens <= stats.token_cap

    # The same load without the limiter: over the limits, and 429s.
    with LocalSiliconCloud(rate_limits=limits) as emu:
        rows = _caption(ds, emu, concurrency=2, max_attempts=1)
        stats = emu.rate_stats()[QWEN]
    assert stats.request_cap is not None and stats.peak_requests > stats.request_cap
    refused = [r for r in rows if r["error"]]
    assert stats.refused == len(refused) > 0 and len(rows) == 24  # the job still finished
    assert all("limit reached" in r["error"] for r in refused)


def test_resume_sends_nothing_for_done_rows(
    ray_local: Any, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from siliconvision.ray_data import caption_dataset

    files = make_pngs(tmp_path / "photos", 5)
    ds = ray_local.data.from_items([{"path": str(f)} for f in files])
    settings: dict[str, Any] = {
        "model": QWEN, "api_key": emu.api_key, "base_url": emu.base_url, "concurrency": 1,
        "client_options": FAST, "max_attempts": 1, "batch_size": 5, "requests_per_worker": 1,
    }  # fmt: skip
    emu.fail_next(400)  # one row fails (requests go one at a time: the first one)
    first = tmp_path / "run1"
    caption_dataset(ds, **settings).write_parquet(str(first))
    rows = pq.read_table(first).to_pylist()
    failed = [r for r in rows if r["error"]]
    assert len(rows) == 5 and len(failed) == 1 and "HTTP 400" in failed[0]["error"]

    emu.clear()
    second = tmp_path / "run2"
    caption_dataset(ds, resume_from=str(first), **settings).write_parquet(str(second))
    (redone,) = pq.read_table(second).to_pylist()
    assert redone["path"] == failed[0]["path"] and redone["error"] is None
    assert len(_chat(emu)) == 1  # only the failed row went out again


def test_done_keys_come_from_every_earlier_output_of_the_same_backend(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from siliconvision.ray_data import _done_keys

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pq.write_table(
        pa.table({"row_key": ["k1", "k2"], "error": [None, "HTTP 503"], "backend": ["x", "x"]}),
        tmp_path / "a" / "part-0.parquet",
    )
    pq.write_table(
        pa.table({"row_key": ["k2", "k3"], "error": [None, None], "backend": ["x", "y"],
                  "caption": ["c", "d"]}),
        tmp_path / "b" / "part-0.parquet",
    )  # fmt: skip
    assert _done_keys(str(tmp_path / "a"), "x") == {"k1"}
    assert _done_keys([tmp_path / "a", tmp_path / "b"], "x") == {"k1", "k2"}
    assert _done_keys([tmp_path / "a", tmp_path / "b"], "y") == {"k3"}


class ImageSeen(BaseModel):
    index: int
    width: int
    height: int
    format: str
    color_name: str


class Seen(BaseModel):
    images: list[ImageSeen]
    text: list[str]


def test_schema_output_is_validated(ray_local: Any, emu: LocalSiliconCloud, tmp_path: Path) -> None:
    files = make_pngs(tmp_path / "photos", 2)
    ds = ray_local.data.from_items([{"path": str(f)} for f in files])
    rows = _caption(ds, emu, schema=Seen, max_attempts=2)
    for row in rows:
        assert row["error"] is None, row["error"]
        record = Seen.model_validate_json(row["caption"])  # the record, as JSON text
        assert record.images[0].width in (40, 41) and record.images[0].format == "PNG"
    sent = _chat(emu)
    assert all(r.body["response_format"] == {"type": "json_object"} for r in sent)
    assert "JSON schema" in sent[0].body["messages"][0]["content"][1]["text"]


def test_bad_settings_fail_before_any_request(
    ray_local: Any, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    from siliconvision.ray_data import caption_dataset

    ds = ray_local.data.from_items([{"path": "a.png"}])
    auth = {"api_key": emu.api_key, "base_url": emu.base_url}
    with pytest.raises(MissingAPIKeyError):
        caption_dataset(ds, model=QWEN, base_url=emu.base_url)
    with pytest.raises(ContentError, match="does not take images"):
        caption_dataset(ds, model="Qwen/Qwen2.5-7B-Instruct", **auth)
    with pytest.raises(ValueError, match="image_column 'photo'"):
        caption_dataset(ds, model=QWEN, image_column="photo", **auth)
    with pytest.raises(ValueError, match="no image column"):
        caption_dataset(ray_local.data.from_items([{"x": 1}]), model=QWEN, **auth)
    with pytest.raises(ValueError, match="client_options \\['proxies'\\]"):
        caption_dataset(ds, model=QWEN, client_options={"proxies": "x"}, **auth)
    with pytest.raises(ValueError, match="concurrency"):
        caption_dataset(ds, model=QWEN, concurrency=0, **auth)
    with pytest.raises(ValueError, match="num_cpus"):
        caption_dataset(ds, model=QWEN, num_cpus=0, **auth)
    with pytest.raises(FileNotFoundError, match="resume_from"):
        caption_dataset(ds, model=QWEN, resume_from=str(tmp_path / "nope"), **auth)
    with pytest.raises(ValueError, match="schema"):
        caption_dataset(ds, model=QWEN, schema={"type": 12}, **auth)
    assert emu.requests == []
    # The key is not in the dataset's plan (it travels in Ray's object store).
    out = caption_dataset(ds, model=QWEN, **auth)
    import cloudpickle

    assert emu.api_key.encode() not in cloudpickle.dumps(out)
