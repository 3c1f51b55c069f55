"""The ways of preparing an image that the ``imaging`` scenario compares side by side.

Every candidate runs siliconvision's own pipeline (``prepare_image`` from the file's
path, as users call it), switched to one backend, so the table compares backends and
nothing else; the floors decode only:

- ``pillow_before``: Pillow only, as before libvips was adopted (a JPEG decoded at the
  smallest DCT scale that covers the target, ``reduce()`` first only past 3x);
- ``pillow_reduce``: Pillow only, ``draft()`` and ``reduce()`` wherever they apply
  (``reduce()`` to within 2x of the target, then BICUBIC): the fallback without pyvips;
- ``vips``: libvips (pyvips), what ``prepare_image`` uses when it is installed;
- ``original``: the original bytes, validated as ``prepare_image`` validates an image it
  sends as it is (a JPEG decoded at 1/8 scale to read every byte, others whole);
- ``floor_pillow``, ``floor_vips``: decoding only, at the smallest scale that still
  covers the target (Pillow ``draft()`` + ``load()``; libvips shrink-on-load): what no
  preparation can beat.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CANDIDATES", "Candidate", "Outcome", "available_candidates", "candidate_by_key"]

MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
#: Big PNGs exceed the default 50 MiB file limit: the benchmark lifts it.
MAX_FILE_BYTES = 1 << 30


@dataclass(frozen=True)
class Outcome:
    """What a candidate made: the image bytes it would send and their size."""

    byte_size: int
    width: int
    height: int


@dataclass(frozen=True)
class Candidate:
    key: str
    label: str
    group: str  # "ours" (the default pipeline), "baseline", "peer" or "diagnostic"
    needs_vips: bool
    run: Callable[[Path, str], Outcome]
    prepares: bool = True  # False: a floor, which decodes and sends nothing


def _vips_installed() -> bool:
    return importlib.util.find_spec("pyvips") is not None


@contextmanager
def _backend(vips: bool, reducing_gap: float | None = None) -> Iterator[None]:
    from siliconvision.images import _resize, _vips

    previous = _vips.set_enabled(vips)
    gap = _resize._REDUCING_GAP
    if reducing_gap is not None:
        _resize._REDUCING_GAP = reducing_gap  # type: ignore[misc]
    try:
        yield
    finally:
        _vips.set_enabled(previous)
        _resize._REDUCING_GAP = gap  # type: ignore[misc]


def _prepare(path: Path, detail: str, model: str | None = MODEL) -> Outcome:
    from siliconvision.images import prepare_image

    prepared = prepare_image(
        path, model=model, detail=detail, cache=None, max_file_bytes=MAX_FILE_BYTES
    )  # type: ignore[arg-type]
    return Outcome(prepared.byte_size, prepared.width or 0, prepared.height or 0)


def _pillow_before(path: Path, detail: str) -> Outcome:
    with _backend(vips=False, reducing_gap=3.0):
        return _prepare(path, detail)


def _pillow_reduce(path: Path, detail: str) -> Outcome:
    with _backend(vips=False):
        return _prepare(path, detail)


def _libvips(path: Path, detail: str) -> Outcome:
    with _backend(vips=True):
        return _prepare(path, detail)


def _original(path: Path, detail: str) -> Outcome:
    return _prepare(path, detail, model=None)  # no model: nothing to resize to


def _target(path: Path, detail: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """(format, stored size, the size the pipeline downsizes to; the stored size if none)."""
    from PIL import Image

    from siliconvision.tokens import client_target_size

    with Image.open(path) as img:
        fmt, size = str(img.format), img.size
    target = client_target_size(*size, model=MODEL, detail=detail)  # type: ignore[arg-type]
    return fmt, size, target or size


def _floor_pillow(path: Path, detail: str) -> Outcome:
    from PIL import Image

    _, _, target = _target(path, detail)
    with Image.open(io.BytesIO(path.read_bytes())) as img:
        if img.format == "JPEG":
            img.draft(img.mode, target)
        img.load()
        return Outcome(0, *img.size)


def _floor_vips(path: Path, detail: str) -> Outcome:
    import pyvips

    from siliconvision.images import _vips

    fmt, size, target = _target(path, detail)
    factor = _vips._load_factor(size, target)
    loader = getattr(pyvips.Image, f"{fmt.lower()}load_source")
    options = (
        {"shrink": factor} if fmt == "JPEG" else {"scale": 1 / factor} if fmt == "WEBP" else {}
    )
    source = pyvips.Source.new_from_memory(path.read_bytes())
    image = loader(source, access="sequential", **(options if factor > 1 else {}))
    image.write_to_memory()
    return Outcome(0, image.width, image.height)


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("pillow_before", "Pillow, as before", "baseline", False, _pillow_before),
    Candidate("pillow_reduce", "Pillow, draft() + reduce()", "peer", False, _pillow_reduce),
    Candidate("vips", "libvips (pyvips)", "ours", True, _libvips),
    Candidate("original", "original bytes, validated", "peer", False, _original),
    Candidate(
        "floor_pillow", "floor: Pillow draft() + load()", "diagnostic", False, _floor_pillow, False
    ),
    Candidate(
        "floor_vips", "floor: libvips shrink-on-load", "diagnostic", True, _floor_vips, False
    ),
)


def available_candidates() -> list[Candidate]:
    """The candidates this environment can run (libvips ones need pyvips); the default
    pipeline's row is libvips' when pyvips is installed, else Pillow's."""
    vips = _vips_installed()
    out = []
    for candidate in CANDIDATES:
        if candidate.needs_vips and not vips:
            continue
        if candidate.key == "pillow_reduce" and not vips:  # then it is the default
            candidate = Candidate(
                candidate.key, candidate.label, "ours", False, candidate.run, candidate.prepares
            )
        out.append(candidate)
    return out


def candidate_by_key(key: str) -> Candidate:
    for candidate in CANDIDATES:
        if candidate.key == key:
            return candidate
    raise KeyError(key)
