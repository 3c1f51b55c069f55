"""The two backends of image preparation give the same images within resampling.

libvips (``siliconvision[vips]``) renders the common cases, Pillow everything else and
everything when pyvips is missing. Both are run here on the same inputs through the
real pipeline (``prepare_image``), and their pixels are compared with what a
Pillow-backed server makes of the original (one plain ``resize(size, BICUBIC)`` of the
fully decoded image): the same size, format and flags, and PSNR/max-difference bounds
(lossless PNG tightly; JPEG and WEBP within their own coding error).
"""

from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Iterator

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from siliconvision.errors import ImageInputError
from siliconvision.images import _vips, prepare_image
from siliconvision.tokens import client_target_size
from tests.imaging import decode_part

pytestmark = pytest.mark.skipif(_vips._module() is None, reason="pyvips is not installed")

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
INTERNVL = "OpenGVLab/InternVL2-26B"  # high detail: a mild, exact-size reduction


@pytest.fixture(params=["vips", "pillow"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = _vips.set_enabled(request.param == "vips")
    yield str(request.param)
    _vips.set_enabled(previous)


def photo_like(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Smooth gradients, hard edges and mild grain: what cameras make."""
    gradient = Image.linear_gradient("L").resize(size)
    r, g = gradient, gradient.rotate(90).resize(size)
    b = Image.radial_gradient("L").resize(size)
    img = Image.merge("RGB", (r, g, b))
    img.paste((250, 20, 20), (size[0] // 5, size[1] // 4, size[0] // 2, size[1] // 2))
    img = Image.blend(img, Image.effect_noise(size, 30).convert("RGB"), 0.15)
    if mode in ("RGBA", "LA"):  # alpha from 128: un-premultiplying magnifies rounding below
        img.putalpha(Image.linear_gradient("L").point(lambda v: 128 + v // 2).resize(size))
    return img.convert(mode)


def encoded(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        options.setdefault("compress_level", 1)  # the inputs' compression is not tested
    img.save(buf, fmt, **options)
    return buf.getvalue()


def psnr_and_max(a: Image.Image, b: Image.Image) -> tuple[float, int]:
    assert a.mode == b.mode and a.size == b.size
    difference = ImageChops.difference(a, b)
    extrema = difference.getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    mean_square = sum(v * v for v in ImageStat.Stat(difference).rms) / len(bands)
    psnr = math.inf if mean_square == 0 else 10 * math.log10(255**2 / mean_square)
    return psnr, max(int(high) for _, high in bands)


def server_view(data: bytes, size: tuple[int, int]) -> Image.Image:
    """What a Pillow-backed server makes of the original: a plain BICUBIC resize."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.resize(size, Image.Resampling.BICUBIC)


# (format, mode, save options, PSNR bound vs the server's view, max difference bound)
CASES = [
    ("PNG", "RGB", {}, 45.0, 12),
    ("PNG", "L", {}, 45.0, 12),
    ("PNG", "RGBA", {}, 42.0, 16),
    ("PNG", "LA", {}, 42.0, 16),
    ("JPEG", "RGB", {"quality": 95}, 36.0, None),
    ("JPEG", "L", {"quality": 95}, 36.0, None),
    ("WEBP", "RGB", {"quality": 95}, 36.0, None),
    ("WEBP", "RGBA", {"quality": 95}, 34.0, None),
]


@pytest.mark.parametrize(
    ("model", "detail", "size"),
    [(QWEN, "low", (1200, 900)), (QWEN, "low", (2400, 1800)), (INTERNVL, "high", (1000, 560))],
    ids=["low-shrink-on-load", "low-draft", "high-mild"],
)
@pytest.mark.parametrize(("fmt", "mode", "options", "min_psnr", "max_diff"), CASES)
def test_both_backends_send_what_the_server_would_make_of_the_original(
    backend: str,
    fmt: str,
    mode: str,
    options: dict[str, object],
    min_psnr: float,
    max_diff: int | None,
    model: str,
    detail: str,
    size: tuple[int, int],
) -> None:
    if size == (2400, 1800) and fmt != "JPEG":
        pytest.skip("drafting is JPEG's: the other formats take the path above")
    data = encoded(photo_like(size, mode), fmt, **options)
    target = client_target_size(*size, model=model, detail=detail)  # type: ignore[arg-type]
    assert target is not None
    prepared = prepare_image(data, model=model, detail=detail, cache=None)
    assert (prepared.width, prepared.height) == target
    assert prepared.resized and prepared.reencoded
    assert prepared.mime_type == f"image/{fmt.lower()}"
    sent = decode_part(prepared.to_part())
    assert sent.size == target
    expected = server_view(data, target)
    assert sent.mode == expected.mode
    psnr, worst = psnr_and_max(sent, expected)
    assert psnr >= min_psnr, (backend, psnr, worst)
    if max_diff is not None:
        assert worst <= max_diff, (backend, psnr, worst)


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "RGB"), ("JPEG", "RGB"), ("WEBP", "RGBA")])
def test_the_backends_agree_with_each_other(fmt: str, mode: str) -> None:
    data = encoded(photo_like((1200, 900), mode), fmt, quality=95)
    sent = {}
    for vips in (True, False):
        previous = _vips.set_enabled(vips)
        try:
            prepared = prepare_image(data, model=QWEN, detail="low", cache=None)
        finally:
            _vips.set_enabled(previous)
        sent[vips] = decode_part(prepared.to_part())
    psnr, worst = psnr_and_max(sent[True], sent[False])
    assert psnr >= (45.0 if fmt == "PNG" else 38.0), (psnr, worst)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("model", [QWEN, None], ids=["resized", "as-is"])
def test_exif_orientation_is_baked_in_the_same_by_both_backends(
    backend: str, orientation: int, model: str | None
) -> None:
    img = photo_like((1200, 800))  # asymmetric: every turn and flip shows
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(img, "JPEG", quality=95, exif=exif.tobytes())
    prepared = prepare_image(data, model=model, detail="low", cache=None)
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert reference is not None
    size = (prepared.width, prepared.height)
    assert (prepared.original_width, prepared.original_height) == reference.size
    if model is None:
        assert size == reference.size
    if orientation == 1 and model is None:
        assert not prepared.reencoded  # sent as it is
        return
    sent = decode_part(prepared.to_part())
    assert sent.getexif().get(0x0112) is None  # upright, and no metadata carried along
    psnr, _ = psnr_and_max(sent, reference.convert("RGB").resize(size, Image.Resampling.BICUBIC))
    assert psnr >= 34.0, (backend, orientation, psnr)


def test_a_jpeg_is_decoded_once_by_libvips_at_the_smallest_scale_that_covers_the_target(
    decodes: list[tuple[str, tuple[int, int]]],
) -> None:
    data = encoded(photo_like((1200, 900)), "JPEG")
    prepared = prepare_image(data, model=QWEN, detail="low", cache=None)
    assert (prepared.width, prepared.height) == (597, 448)
    assert decodes == [("JPEG", (600, 450))]  # 1/2: 1/4 (300x225) would not cover it


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_a_jpeg_drafted_to_a_sixteenth_is_decoded_by_pillow_and_finished_by_libvips(
    orientation: int, decodes: list[tuple[str, tuple[int, int]]], vips_loads: list[str]
) -> None:
    """At 1/4 or 1/8 scale Pillow's draft() decodes fastest; libvips resizes, turns and
    encodes the (small) result."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(photo_like((3200, 2400)), "JPEG", quality=95, exif=exif.tobytes())
    prepared = prepare_image(data, model=QWEN, detail="low", cache=None)
    turned = orientation in (6, 8)
    assert (prepared.width, prepared.height) == ((448, 597) if turned else (597, 448))
    assert decodes == [("JPEG", (800, 600))] and vips_loads == []
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert reference is not None
    expected = reference.resize((prepared.width, prepared.height), Image.Resampling.BICUBIC)
    psnr, _ = psnr_and_max(decode_part(prepared.to_part()), expected)
    assert psnr >= 36.0, (orientation, psnr)


def test_bytearray_and_memoryview_go_through_libvips_too(
    decodes: list[tuple[str, tuple[int, int]]],
) -> None:
    data = encoded(photo_like((1200, 900)), "PNG")
    results = [
        prepare_image(source, model=QWEN, detail="low", cache=None)
        for source in (data, bytearray(data), memoryview(data))
    ]
    assert len({r.url for r in results}) == 1
    assert decodes == [("PNG", (1200, 900))] * 3


def test_what_libvips_faults_pillow_judges(decodes: list[tuple[str, tuple[int, int]]]) -> None:
    """Corrupt data that libjpeg only warns about is refused as Pillow refuses it, and a
    harmless quirk that libvips (failing on any warning) refuses is read as Pillow reads
    it: the backend never changes what is refused or sent."""
    noise = random.Random(15).randbytes(1200 * 900 * 3)  # incompressible, the same every run
    data = encoded(Image.frombytes("RGB", (1200, 900), noise), "JPEG")
    middle = len(data) // 2
    garbled = data[:middle] + bytes(reversed(data[middle : middle + 5000])) + data[middle + 5000 :]
    with pytest.raises(ImageInputError, match="broken data stream"):
        prepare_image(garbled, model=QWEN, detail="low", cache=None)
    quirky = data[:20] + b"\x00\x00" + data[20:]  # 2 extraneous bytes before a marker
    prepared = prepare_image(quirky, model=QWEN, detail="low", cache=None)
    assert (prepared.width, prepared.height) == (597, 448)
    assert [fmt for fmt, _ in decodes] == ["JPEG", "JPEG", "JPEG", "JPEG"]  # libvips, Pillow x2
    with pytest.raises(ImageInputError, match="truncated"):
        prepare_image(data[: len(data) // 2], model=QWEN, detail="low", cache=None)


@pytest.fixture
def vips_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The libvips loaders called (by name)."""
    import pyvips

    seen: list[str] = []
    for name in ("jpegload_source", "pngload_source", "webpload_source"):
        load = getattr(pyvips.Image, name)

        def spy(*args: object, _load: object = load, _name: str = name, **kw: object) -> object:
            seen.append(_name)
            return _load(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(pyvips.Image, name, spy, raising=False)
    return seen


@pytest.mark.parametrize("kind", ["CMYK JPEG", "palette PNG", "16-bit PNG", "tRNS PNG"])
def test_what_libvips_would_not_render_as_pillow_does_goes_to_pillow(
    kind: str, vips_loads: list[str]
) -> None:
    img = photo_like((1200, 900))
    options: dict[str, object] = {}
    if kind == "CMYK JPEG":
        img = img.convert("CMYK")
    elif kind == "palette PNG":
        img = img.convert("P")
    elif kind == "16-bit PNG":
        img = img.convert("L").point(lambda v: v * 256, "I").convert("I;16")
    else:
        options = {"transparency": (250, 20, 20)}  # a colour key: RGB with tRNS
    fmt = kind.split()[1]
    prepared = prepare_image(encoded(img, fmt, **options), model=QWEN, detail="low", cache=None)
    # downsized, or (a palette PNG) sent as it is: smaller than any RGB re-encoding
    assert (prepared.width, prepared.height) in ((597, 448), (1200, 900))
    assert vips_loads == []
    with Image.open(io.BytesIO(encoded(photo_like((1200, 900)), fmt))) as plain:
        assert plain.mode in ("RGB", "L")
    prepare_image(encoded(photo_like((1200, 900)), fmt), model=QWEN, detail="low", cache=None)
    assert vips_loads == [f"{fmt.lower()}load_source"]  # the plain image does go to libvips


def test_libvips_keeps_nothing_between_images() -> None:
    """Its operation cache would hold every source's bytes: it is off."""
    import pyvips

    data = encoded(photo_like((1200, 900)), "JPEG")
    for _ in range(3):
        prepare_image(data, model=QWEN, detail="low", cache=None)
    assert pyvips.cache_get_max() == 0 and pyvips.cache_get_size() == 0


def test_without_pyvips_pillow_does_it_all(
    monkeypatch: pytest.MonkeyPatch, decodes: list[tuple[str, tuple[int, int]]]
) -> None:
    monkeypatch.setattr(_vips, "_pyvips", False)  # as when the import failed
    data = encoded(photo_like((1200, 900)), "WEBP")
    prepared = prepare_image(data, model=QWEN, detail="low", cache=None)
    assert (prepared.width, prepared.height) == (597, 448)
    assert decodes == [("WEBP", (1200, 900))]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads (3.12+)
def test_a_process_forked_after_libvips_started_prepares_with_pillow() -> None:
    """libvips' thread pool does not survive fork(): the child would hang for ever on
    its first pipeline. It uses Pillow instead (and gives the same image)."""
    import multiprocessing

    data = encoded(photo_like((1200, 900)), "JPEG")
    in_parent = prepare_image(data, model=QWEN, detail="low", cache=None)  # libvips started
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_prepare_in_child, args=(data, queue))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the forked child hung preparing an image")
    width, height, used_vips = queue.get(timeout=5)
    assert (width, height) == (in_parent.width, in_parent.height) and not used_vips


def _prepare_in_child(data: bytes, queue: object) -> None:
    prepared = prepare_image(data, model=QWEN, detail="low", cache=None)
    queue.put((prepared.width, prepared.height, _vips._module() is not None))  # type: ignore[attr-defined]
