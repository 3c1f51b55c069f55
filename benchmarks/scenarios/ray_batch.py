"""Ray Data batches: ours (``caption_dataset``) vs Ray's own ``ray.data.llm`` HTTP processor.

Two scenarios on one local Ray (2 CPUs, every socket on 127.0.0.1):

- ``ray_limits``: caption N images against the emulator enforcing an RPM and a TPM
  limit over a sliding window, TPM binding. Ours shares one limiter between its two
  actors; the peer gets the ``qps`` a user would pick for that limit (its only knob,
  per actor): the binding rate itself, and the binding rate divided by its actors.
  Figures: time, share of the binding limit used, 429s answered, rows captioned.
- ``ray_prep``: 12 MP JPEGs through ours at ``detail=low`` and ``high``: images per
  second per core on the workers (Ray Data's own "remote cpu time" of the captioning
  operator: reading, hashing, preparing, sending), peak memory of a worker (its
  process's high-water mark, polled), bytes uploaded per image; the peer, which sends
  the files as they are (base64 in its preprocess, as its docs show), side by side.
"""

from __future__ import annotations

import atexit
import base64
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Before Ray is imported: a node on 127.0.0.1 and no usage reporting.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from .._common import Check, Context, Metric, Row, ScenarioResult
from .._media import photo_bytes

MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
PROMPT = "Describe this image in one sentence."
_MIB = 1024 * 1024


def _ray() -> Any:
    """The local Ray of this run (started once; its processes get a dead loopback proxy)."""
    import ray

    if ray.is_initialized():
        return ray
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy")
    saved = {name: os.environ.get(name) for name in names}
    loopback = "127.0.0.1,localhost,::1"
    os.environ.update(
        HTTP_PROXY=dead, HTTPS_PROXY=dead, http_proxy=dead, https_proxy=dead,
        NO_PROXY=loopback, no_proxy=loopback,
    )  # fmt: skip
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if ray.util.get_node_ip_address() != "127.0.0.1":
        raise RuntimeError("the benchmark's Ray node is not on 127.0.0.1")
    ray.data.DataContext.get_current().enable_progress_bars = False
    atexit.register(ray.shutdown)
    return ray


def _peer_available() -> bool:
    try:
        import ray.data.llm  # noqa: F401
    except ImportError:
        return False
    return True


def _files(directory: Path, data: bytes, count: int) -> list[Path]:
    """``count`` files of the same bytes (hard links where possible)."""
    directory.mkdir(parents=True, exist_ok=True)
    first = directory / "img_0000.jpg"
    first.write_bytes(data)
    paths = [first]
    for i in range(1, count):
        path = directory / f"img_{i:04d}.jpg"
        try:
            os.link(first, path)
        except OSError:
            shutil.copyfile(first, path)
        paths.append(path)
    return paths


def _peer(
    ray: Any,
    ds: Any,
    base_url: str,
    api_key: str,
    *,
    qps: int | None,
    detail: str,
    concurrency: int = 2,
) -> Any:
    """Ray's HTTP request processor, as its docs show it: the image as a base64 data URI
    built in ``preprocess``, the OpenAI-style body as ``payload``."""
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    config = HttpRequestProcessorConfig(
        url=f"{base_url}/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        qps=qps,
        max_retries=3,
        concurrency=concurrency,
    )

    def preprocess(row: dict[str, Any]) -> dict[str, Any]:
        uri = "data:image/jpeg;base64," + base64.b64encode(row["bytes"]).decode("ascii")
        content = [
            {"type": "image_url", "image_url": {"url": uri, "detail": detail}},
            {"type": "text", "text": PROMPT},
        ]
        return {
            "path": row["path"],
            "payload": {"model": MODEL, "messages": [{"role": "user", "content": content}]},
        }

    def postprocess(row: dict[str, Any]) -> dict[str, Any]:
        response = row["http_response"]
        return {"path": row["path"], "caption": response["choices"][0]["message"]["content"]}

    processor = build_processor(config, preprocess=preprocess, postprocess=postprocess)
    return processor(ds)


def _chat_span(ctx: Context, start: int) -> tuple[float, int, int]:
    """(seconds from the first chat request's arrival to the last answer, requests, bytes)."""
    log = [r for r in ctx.server.requests(start) if r.path.endswith("/chat/completions")]
    if not log:
        return 0.0, 0, 0
    first = min(r.received_at for r in log)
    last = max(r.finished_at or r.received_at for r in log)
    return last - first, len(log), sum(r.body_size for r in log)


def _one_request_tokens(ctx: Context, image: bytes, detail: str) -> int:
    """Total tokens of one caption request (the emulator's count), for the limits."""
    from siliconvision import SiliconVisionClient

    with SiliconVisionClient(
        api_key=ctx.server.api_key, base_url=ctx.server.base_url, model=MODEL
    ) as client:
        result = client.ask(image, PROMPT, detail=detail)
    assert result.usage is not None
    return result.usage.total_tokens


def run_limits(ctx: Context) -> ScenarioResult:
    quick = ctx.settings.quick
    ray = _ray()
    from siliconvision import RateLimits
    from siliconvision.ray_data import caption_dataset

    count = 12 if quick else 150
    window = 2.0 if quick else 10.0
    latency = 0.05 if quick else 0.3
    rpm = 600
    image = photo_bytes(640, 480, seed=7)
    ctx.server.set(latency=0.0, chunk_delay=0.0, reply_chunks=None)
    ctx.server.rate_limits(None)
    per_request = _one_request_tokens(ctx, image, "low")
    # TPM binds, at 3/4 of the RPM's request rate.
    tpm = int(0.75 * rpm * per_request)
    binding_rate = min(rpm / 60, tpm / 60 / per_request)  # requests per second
    limits = {"rpm": rpm, "tpm": tpm, "window": window}
    workdir = Path(tempfile.mkdtemp(prefix="siliconvision-bench-ray-"))
    _files(workdir / "images", image, count)
    rows: list[Row] = []
    checks: list[Check] = []
    notes: list[str] = []

    def measure(key: str, label: str, group: str, make: Callable[[Any], Any]) -> None:
        ctx.server.clear()
        ctx.server.set(latency=latency)
        ctx.server.rate_limits(limits)
        start = ctx.server.count()
        ds = ray.data.read_binary_files(str(workdir / "images"), include_paths=True)
        t0 = time.perf_counter()
        outcome = "finished"
        done = failed = 0
        try:
            out = make(ds).materialize()
            table = out.to_pandas()
            errors = table.get("error")
            failed = int(errors.notna().sum()) if errors is not None else 0
            done = len(table) - failed
        except Exception as exc:
            first = str(exc).strip().splitlines()
            outcome = "job failed: " + (first[-1][:120] if first else type(exc).__name__)
        wall = time.perf_counter() - t0
        stats = ctx.server.rate_stats().get(MODEL, {})
        span, sent, _ = _chat_span(ctx, start)
        accepted = int(stats.get("accepted", 0))
        tokens = int(stats.get("accepted_tokens", 0))
        share_tokens = tokens / (span * tpm / 60) if span else 0.0
        share_requests = accepted / (span * rpm / 60) if span else 0.0
        rows.append(
            Row(
                key,
                label,
                group,
                {
                    "wall_s": wall,
                    "span_s": span,
                    "binding_share": max(share_tokens, share_requests),
                    "refused": int(stats.get("refused", 0)),
                    "requests": sent,
                    "captioned": done,
                    "failed": failed,
                    "outcome": outcome,
                },
            )
        )
        ctx.server.rate_limits(None)
        ctx.server.set(latency=0.0)

    ours_limits = RateLimits(rpm=rpm, tpm=tpm, window=window)
    measure(
        "core",
        "caption_dataset, one shared limiter",
        "ours",
        lambda ds: caption_dataset(
            ds,
            model=MODEL,
            prompt=PROMPT,
            detail="low",
            rate_limits=ours_limits,
            concurrency=2,
            api_key=ctx.server.api_key,
            base_url=ctx.server.base_url,
            client_options={"max_retries": 3},
        ),
    )
    if quick:
        notes.append("Quick run: the peer is measured in full runs only (Ray start-ups are slow).")
    elif _peer_available():
        per_actor = max(1, math.floor(binding_rate / 2))
        naive = max(1, math.floor(binding_rate))
        for key, qps, how in (
            ("peer:rate", naive, "the binding rate"),
            ("peer:split", per_actor, "the binding rate / 2 actors"),
        ):
            measure(
                key,
                f"ray.data.llm HTTP processor, qps={qps} ({how})",
                "peer",
                lambda ds, qps=qps: _peer(
                    ray, ds, ctx.server.base_url, ctx.server.api_key, qps=qps, detail="low"
                ),
            )
    else:
        notes.append("`ray.data.llm` is not importable here: the peer was not measured.")
    shutil.rmtree(workdir, ignore_errors=True)

    result = ScenarioResult(
        key="ray_limits",
        title="Ray Data within rate limits",
        description=(
            f"{count} images (640x480 JPEG, `detail=low`, {per_request} tokens per request "
            f"as the emulator counts them), the emulator enforcing {rpm} RPM and {tpm:,} TPM "
            f"over a sliding {window:g} s window (so TPM binds: {binding_rate:.2f} requests/s), "
            f"answering after {latency * 1000:.0f} ms. Two actors each side, on a local Ray "
            "(2 CPUs). Ours: `caption_dataset(..., rate_limits=RateLimits(rpm, tpm, "
            "window=...), concurrency=2)`. The peer: `ray.data.llm`'s HTTP request "
            "processor (`qps` per actor, `max_retries=3`, its default batch size 64) at the "
            "qps a user would pick: the binding rate, or that rate split over its 2 actors "
            "(qps is an integer). *binding share*: tokens (or requests) accepted per second "
            "over the limit, from the first request's arrival to the last answer; *429s*: "
            "answered by the emulator; *wall*: the whole job, actors' start-up included."
        ),
        metrics=[
            Metric("wall_s", "wall (s)", "{:.1f}", ratio=False),
            Metric("span_s", "sending (s)", "{:.1f}", ratio=False),
            Metric("binding_share", "binding share", "{:.0%}", ratio=False),
            Metric("refused", "429s", "{}", ratio=False),
            Metric("requests", "requests", "{}", ratio=False),
            Metric("captioned", "captioned", "{}", ratio=False),
            Metric("failed", "failed rows", "{}", ratio=False),
            Metric("outcome", "job", "{}", ratio=False),
        ],
        rows=rows,
        notes=notes,
    )
    ours = result.row("core")
    if ours is not None:
        share = ours.values["binding_share"]
        checks.append(Check("ours: >= 90% of the binding limit used", share >= 0.9, f"{share:.0%}"))
        refused = ours.values["refused"]
        checks.append(Check("ours: 0 429s", refused == 0, str(refused)))
        checks.append(
            Check(
                "ours: every image captioned",
                ours.values["captioned"] == count,
                f"{ours.values['captioned']} of {count}",
            )
        )
        for key in ("peer:rate", "peer:split"):
            peer = result.row(key)
            if peer is None:
                continue
            worse = peer.values["refused"] > 0 or peer.values["binding_share"] < share
            checks.append(
                Check(
                    f"{peer.label}: gets 429s or uses less than ours",
                    worse,
                    f"{peer.values['refused']} 429s, {peer.values['binding_share']:.0%}",
                )
            )
    result.checks = checks
    return result


# --------------------------------------------------------------------------- preparation


# Ray's process titles: "ray::MapWorker(...)" for map actors, "ray::ReadBinary->Map(...)"
# and the like for tasks; idle workers are "ray::IDLE", other actors their class name.
_MAPWORKER = re.compile(r"^ray::(MapWorker|ReadBinary|Map|FromItems)")


@contextmanager
def _peak_worker_memory() -> Iterator[dict[str, int]]:
    """Polls the Ray worker processes running map actors (their titles name the
    operator) for their memory high-water mark (``VmHWM``, peak RSS); yields a dict
    filled with ``{title: max VmHWM in bytes}`` once the block ends."""
    import psutil

    found: dict[str, int] = {}
    stop = threading.Event()

    def poll() -> None:
        me = psutil.Process()
        while not stop.is_set():
            for proc in me.children(recursive=True):
                try:
                    title = " ".join(proc.cmdline())
                    if not _MAPWORKER.search(title):
                        continue
                    with open(f"/proc/{proc.pid}/status", encoding="ascii") as status:
                        for line in status:
                            if line.startswith("VmHWM:"):
                                peak = int(line.split()[1]) * 1024
                                name = title.split(" ", 1)[0][:80]
                                found[name] = max(found.get(name, 0), peak)
                except (psutil.Error, OSError, ValueError):
                    continue
            stop.wait(0.1)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join(5)


_CPU = re.compile(r"Remote cpu time: [^\n]*?([\d.]+)(us|ms|s) total")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _cpu_seconds(stats: str, operator: str) -> float | None:
    """The "Remote cpu time" totals of the operators whose name holds ``operator`` (every
    operator for ``""``) in ``Dataset.stats()`` text."""
    total: float | None = None
    for block in re.split(r"\n(?=\s*Operator \d+ )", stats):
        head = block.strip().split("\n", 1)[0]
        if not head.startswith("Operator ") or operator not in head:
            continue
        match = _CPU.search(block)
        if match:
            total = (total or 0.0) + float(match.group(1)) * _UNITS[match.group(2)]
    return total


def run_prep(ctx: Context) -> ScenarioResult:
    quick = ctx.settings.quick
    ray = _ray()
    from siliconvision.ray_data import caption_dataset

    count = 4 if quick else 24
    photo = ctx.media.photo  # 4000x3000 (12 MP); quick: 1600x1200
    from PIL import Image

    with Image.open(photo) as img:
        width, height = img.size
    size = photo.stat().st_size
    workdir = Path(tempfile.mkdtemp(prefix="siliconvision-bench-prep-"))
    _files(workdir / "photos", photo.read_bytes(), count)
    _files(workdir / "small", ctx.media.small.read_bytes(), count)
    ctx.server.clear()
    ctx.server.set(latency=0.0, chunk_delay=0.0, reply_chunks=None)
    ctx.server.rate_limits(None)
    rows: list[Row] = []

    def measure(
        key: str,
        label: str,
        group: str,
        make: Callable[[Any], Any],
        op: str,
        folder: str = "photos",
    ) -> None:
        start = ctx.server.count()
        ds = ray.data.read_binary_files(str(workdir / folder), include_paths=True)
        paths_only = ray.data.from_items(
            [{"path": str(p)} for p in sorted((workdir / folder).iterdir())]
        )
        with _peak_worker_memory() as peaks:
            t0 = time.perf_counter()
            out = make(paths_only if group != "peer" else ds).materialize()
            wall = time.perf_counter() - t0
        stats = out.stats()
        cpu = _cpu_seconds(stats, op)
        _, sent, body = _chat_span(ctx, start)
        values: dict[str, Any] = {
            "images_per_core_s": count / cpu if cpu else None,
            "cpu_ms": cpu / count * 1000 if cpu else None,
            "peak_mib": max(peaks.values()) / _MIB if peaks else None,
            "sent_kib": body / max(sent, 1) / 1024,
            "wall_s": wall,
        }
        rows.append(Row(key, label, group, values))

    def ours(detail: str) -> Callable[[Any], Any]:
        return lambda ds: caption_dataset(
            ds,
            model=MODEL,
            prompt=PROMPT,
            detail=detail,
            concurrency=2,
            api_key=ctx.server.api_key,
            base_url=ctx.server.base_url,
        )

    if not quick:  # what a worker holds whatever the images: Ray, pyarrow, the client
        measure(
            "core:baseline",
            "caption_dataset, 256x256 JPEGs (a worker's own memory)",
            "diagnostic",
            ours("low"),
            "_CaptionWorker",
            folder="small",
        )
    for detail in ("low",) if quick else ("low", "high"):
        measure(
            f"core:{detail}",
            f"caption_dataset, path rows, detail={detail}",
            "ours",
            ours(detail),
            "_CaptionWorker",
        )
    if not quick and _peer_available():
        measure(
            "peer:low",
            "ray.data.llm HTTP processor, base64 of the file, detail=low",
            "peer",
            lambda ds: _peer(
                ray, ds, ctx.server.base_url, ctx.server.api_key, qps=None, detail="low"
            ),
            "",
        )
    shutil.rmtree(workdir, ignore_errors=True)
    result = ScenarioResult(
        key="ray_prep",
        title="Ray Data workers on 12 MP photos",
        description=(
            f"{count} photos of {width}x{height} ({width * height / 1e6:.0f} MP JPEG, "
            f"{size / _MIB:.1f} MiB), two actors on a local Ray (2 CPUs), the emulator "
            "answering at once. *images/s per core*: images over the CPU seconds Ray Data "
            'counts for the operator\'s tasks ("remote cpu time": read, hash, decode, '
            "resize, encode, send; for the peer all its operators); *peak worker memory*: the "
            "largest high-water mark (peak RSS, polled) of a worker process running a map "
            "operator (the first row shows what a worker holds with small images); *sent*: "
            "request body per "
            "image, from the emulator's log. At `detail=high` this photo is within what "
            "Qwen2.5-VL keeps, so it goes as it is (decoded once to check it)."
        ),
        metrics=[
            Metric("images_per_core_s", "images/s per core", "{:.1f}", ratio=False),
            Metric("cpu_ms", "CPU ms per image", "{:.0f}", ratio=False),
            Metric("peak_mib", "peak worker memory (MiB)", "{:.0f}", ratio=False),
            Metric("sent_kib", "sent per image (KiB)", "{:,.0f}", ratio=False),
            Metric("wall_s", "wall (s)", "{:.1f}", ratio=False),
        ],
        rows=rows,
    )
    return result
