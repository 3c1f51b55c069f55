"""Turn any image source into an encoded OpenAI-style ``image_url`` part.

One entry point, :func:`prepare_image` (and its shortcut :func:`image_part`), takes a
local path (``str`` or ``os.PathLike``), ``bytes``/``bytearray``/``memoryview``, a
binary file object, a ``PIL.Image.Image``, a ``data:`` URI, a :class:`Base64Image`
(base64 data and its MIME type, as framework image blocks hold them) or an http(s)
URL, and:

- sniffs the real format from the bytes (never from a file name);
- validates: empty input, not an image, truncated or corrupt data, decompression
  bombs (checked from the header, before decoding), aspect ratios the server refuses;
- downsizes to what the target model's server keeps for the chosen ``detail``
  (:func:`siliconvision.tokens.client_target_size`), re-encoding only when that makes
  the upload smaller;
- converts what the server does not take (anything but JPEG, PNG, WEBP and still
  GIF), bakes EXIF orientation into the pixels and never carries metadata along.

Bad input raises :class:`~siliconvision.errors.ImageInputError` naming the source
and the reason, before any network call. http(s) URLs pass through untouched unless
``fetch_urls=True`` (then they are fetched through the SSRF guard). Local files are
read under the core file policy (:mod:`siliconvision.guards`): regular files only,
size checked before reading.

Example:
    >>> from PIL import Image
    >>> photo = Image.new("RGB", (4000, 3000))
    >>> prepared = prepare_image(photo, model="Qwen/Qwen2.5-VL-7B-Instruct", detail="low")
    >>> (prepared.width, prepared.height, prepared.resized)
    (597, 448, True)
    >>> image_part("https://example.com/cat.png")["image_url"]
    {'url': 'https://example.com/cat.png', 'detail': 'high'}

Decisions worth knowing:

- Output format when re-encoding: JPEG, PNG and WEBP stay in their format; GIF
  (when resized), animated images (first frame) and formats the server does not take
  (TIFF, BMP, ICO, PPM, AVIF, HEIC with a plugin, ...) become PNG when the image has
  transparency or is palette/bilevel art, JPEG (quality 90) when it has at least
  1,000,000 pixels, and otherwise whichever of PNG and JPEG is smaller.
- An image whose EXIF orientation is not "normal" is re-encoded upright (servers that
  decode with plain Pillow ignore EXIF and would see it sideways).
- Images are re-encoded only when needed: when only downsizing is involved and the
  result is not smaller than the original bytes, the original bytes are sent.
- Accepted formats in risky modes are converted even when small: CMYK JPEG to RGB
  JPEG, 16/32-bit grey PNG to 8-bit PNG (a plain ``convert("RGB")`` clips it to white).
- ``PIL.Image`` sources are always encoded (there are no original bytes) and never
  cached; paths are cached by (device, inode, size, mtime, ctime), bytes, file
  objects, fetched URLs and data URIs by a BLAKE2b digest of their bytes (data URIs
  and :class:`Base64Image` also by a SHA-256 of their text, so the same text again
  is not decoded).
- :func:`encode_image` keeps an image's own bytes (as base64, for a framework's image
  block) and checks them without decoding: header, then structure (end markers,
  PNG chunk lengths); the pixels are decoded once, by :func:`prepare_image`, when
  the block is sent.
- Re-encoding settings: JPEG quality 90, WEBP quality 90, PNG zlib level 6.
- Downsizing uses Pillow's BICUBIC filter, the one the servers' image processors use
  (Qwen2-VL's ``resample=BICUBIC``): sent at the exact kept size, the model sees what
  it would have seen from the original.
- Metadata (EXIF, ICC profile, text chunks) is never copied into re-encoded output.
- 16-bit images are scaled to 8 bits, 32-bit integer and float images are stretched
  from their own min..max to 0..255.
- Ghostscript-backed EPS is never opened (untrusted input must not reach a
  PostScript interpreter).
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import io
import math
import os
import re
import struct
import sys
import threading
import urllib.parse
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, BinaryIO, Final, Literal, TypeAlias, cast

from PIL import ExifTags, Image, UnidentifiedImageError

from .catalog import Detail, ModelSpec, get_model_spec
from .errors import ImageInputError
from .guards import (
    DEFAULT_MAX_FILE_BYTES,
    LocalFileError,
    UrlCheck,
    check_local_file,
    fetch_url,
    read_checked_file,
)
from .tokens import client_target_size

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_CACHE",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "Base64Image",
    "EncodedImage",
    "ImageCache",
    "ImageSource",
    "PreparedImage",
    "encode_image",
    "image_part",
    "is_data_uri",
    "is_image_url",
    "prepare_image",
]

ImageSource: TypeAlias = (
    "str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | Image.Image | Base64Image"
)

DEFAULT_MAX_IMAGE_PIXELS: Final = 89_478_485
"""Pillow's own decompression-bomb threshold (about 9459 x 9459 pixels)."""

ACCEPTED_FORMATS: Final = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
"""Pillow format names SiliconCloud takes as they are (GIF only when not animated)."""

_DETAILS: Final = ("low", "high", "auto")
_MIME: Final = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
# Modes in which the server's decoder surely reads each accepted format right: CMYK JPEG
# (inverted Adobe CMYK is a classic), 16/32-bit grey PNG (``convert("RGB")`` clips it to
# white) and odd modes are converted to 8-bit RGB/L first.
_SENDABLE_MODES: Final[dict[str, tuple[str, ...]]] = {
    "JPEG": ("L", "RGB"),
    "MPO": ("L", "RGB"),
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA"),
    "WEBP": ("RGB", "RGBA"),
    "GIF": ("L", "P"),
}
_UNSAFE_FORMATS: Final = frozenset({"EPS"})
_JPEG_QUALITY: Final = 90
_WEBP_QUALITY: Final = 90
_JPEG_MIN_PIXELS: Final = 1_000_000
_LABEL_MAX: Final = 120
_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_NO_MODEL: Final = ModelSpec(id="(no model)", known=False, source="no model given: no resizing")
# ``warnings.catch_warnings`` swaps process-wide state: serialise our (header-only) opens.
_OPEN_LOCK: Final = threading.Lock()


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send, with what was done to it.

    Example:
        >>> p = prepare_image("https://example.com/a.png", detail="low")
        >>> p.to_part()
        {'type': 'image_url', 'image_url': {'url': 'https://example.com/a.png', 'detail': 'low'}}
        >>> p.mime_type is None, p.byte_size
        (True, 0)
    """

    url: str
    detail: Detail
    mime_type: str | None
    width: int | None
    height: int | None
    original_width: int | None
    original_height: int | None
    original_format: str | None
    byte_size: int
    resized: bool
    reencoded: bool
    source_label: str

    def to_part(self) -> dict[str, Any]:
        """The OpenAI-style content part, ``detail`` always explicit.

        >>> prepare_image("https://example.com/a.png").to_part()["type"]
        'image_url'
        """
        return {"type": "image_url", "image_url": {"url": self.url, "detail": self.detail}}

    @property
    def is_url(self) -> bool:
        """True when ``url`` is an http(s) URL the server will fetch itself."""
        return self.mime_type is None

    def __repr__(self) -> str:
        url = self.url if len(self.url) <= 80 else f"{self.url[:60]}...({len(self.url)} chars)"
        return (
            f"PreparedImage(url={url!r}, detail={self.detail!r}, mime_type={self.mime_type!r}, "
            f"size={self.width}x{self.height}, original={self.original_width}x"
            f"{self.original_height} {self.original_format}, byte_size={self.byte_size}, "
            f"resized={self.resized}, reencoded={self.reencoded}, "
            f"source_label={self.source_label!r})"
        )


@dataclass(frozen=True)
class Base64Image:
    """Base64 image data with its declared MIME type, as framework image blocks hold it
    (``{"base64": ..., "mime_type": ...}``): an image source prepared exactly as the
    ``data:`` URI it stands for (the same validation and cache entries), without
    building that URI unless the image is sent as it is.

    >>> Base64Image("iVBORw0KGgo=", "image/png")
    Base64Image(data=<12 base64 chars>, mime_type='image/png')
    """

    data: str
    mime_type: str

    def __repr__(self) -> str:
        return f"Base64Image(data=<{len(self.data):,} base64 chars>, mime_type={self.mime_type!r})"


@dataclass(frozen=True)
class EncodedImage:
    """An image's own bytes as base64 (what :func:`encode_image` returns): what a
    standard base64 image block of a framework holds, before any downsizing.

    Example:
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (8, 8)).save(buf, "PNG")
        >>> encoded = encode_image(buf.getvalue(), cache=None)
        >>> (encoded.mime_type, encoded.width, encoded.height, encoded.converted)
        ('image/png', 8, 8, False)
    """

    data: str
    """Base64 of the image's bytes (no ``data:`` prefix, no line breaks)."""
    mime_type: str
    width: int
    height: int
    original_format: str
    byte_size: int
    """Size of the bytes ``data`` encodes."""
    converted: bool
    """True when the bytes are not the original ones (a format servers do not take)."""
    source_label: str

    def __repr__(self) -> str:
        return (
            f"EncodedImage(data=<{len(self.data):,} base64 chars>, mime_type={self.mime_type!r}, "
            f"size={self.width}x{self.height}, original_format={self.original_format!r}, "
            f"byte_size={self.byte_size}, converted={self.converted}, "
            f"source_label={self.source_label!r})"
        )


# --------------------------------------------------------------------------- cache


class ImageCache:
    """A bounded, thread-safe LRU cache of prepared images.

    Bounded by entry count and by the total size of the data URIs (and, for
    :func:`encode_image`, base64 strings) it holds; the least recently used entries
    are evicted first. Entries larger than ``max_bytes`` are not stored.

    Example:
        >>> cache = ImageCache(max_entries=8)
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (8, 8)).save(buf, "PNG")
        >>> _ = prepare_image(buf.getvalue(), cache=cache)
        >>> _ = prepare_image(buf.getvalue(), cache=cache)
        >>> (cache.hits, cache.misses, len(cache))
        (1, 1, 1)
    """

    def __init__(self, max_entries: int = 256, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("max_entries and max_bytes must be >= 0")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, PreparedImage | EncodedImage] = OrderedDict()
        # encode_image results held, by the identity of their base64 string (alive, so
        # its id is its own while indexed), with the SHA-256 of each data URI text it
        # was prepared as: the same block sent again is not hashed again.
        self._digests: dict[int, tuple[EncodedImage, dict[str, bytes]]] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    @property
    def hits(self) -> int:
        """How many lookups found an entry."""
        return self._hits

    @property
    def misses(self) -> int:
        """How many lookups found nothing."""
        return self._misses

    @property
    def total_bytes(self) -> int:
        """Characters of data URI and base64 held (one byte each: they are ASCII)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> PreparedImage | None:
        """The entry for ``key`` (marked most recently used), or ``None``."""
        value = self._lookup(key, count_miss=True)
        return value if isinstance(value, PreparedImage) else None

    def _peek(self, key: Hashable) -> PreparedImage | None:
        """Like :meth:`get`, but an absent key is not counted as a miss (a first,
        cheaper lookup that a counted one follows)."""
        value = self._lookup(key, count_miss=False)
        return value if isinstance(value, PreparedImage) else None

    def _lookup(self, key: Hashable, *, count_miss: bool) -> PreparedImage | EncodedImage | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self._misses += count_miss
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: Hashable, value: PreparedImage | EncodedImage) -> None:
        """Store ``value`` under ``key``, evicting least recently used entries."""
        cost = _cost(value)
        if cost > self.max_bytes or self.max_entries == 0:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._drop(old)
            self._entries[key] = value
            self._bytes += cost
            if isinstance(value, EncodedImage):
                self._digests[id(value.data)] = (value, {})
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._drop(evicted)

    def _drop(self, value: PreparedImage | EncodedImage) -> None:
        """Account for ``value`` leaving (the lock is held)."""
        self._bytes -= _cost(value)
        if isinstance(value, EncodedImage):
            known = self._digests.get(id(value.data))
            if known is not None and known[0] is value:
                del self._digests[id(value.data)]

    def _text_digest(self, data: str, header: str) -> bytes | None:
        """The digest remembered for ``header + data`` when ``data`` is the very string
        of an :func:`encode_image` result held here."""
        with self._lock:
            known = self._digests.get(id(data))
            return known[1].get(header) if known is not None and known[0].data is data else None

    def _remember_text_digest(self, data: str, header: str, digest: bytes) -> None:
        with self._lock:
            known = self._digests.get(id(data))
            if known is not None and known[0].data is data:
                known[1][header] = digest

    def clear(self) -> None:
        """Drop every entry and reset the hit/miss counters."""
        with self._lock:
            self._entries.clear()
            self._digests.clear()
            self._bytes = 0
            self._hits = 0
            self._misses = 0


def _cost(value: PreparedImage | EncodedImage) -> int:
    return len(value.url) if isinstance(value, PreparedImage) else len(value.data)


DEFAULT_CACHE: Final = ImageCache()
"""The process-wide cache :func:`prepare_image` uses unless told otherwise."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class _Options:
    spec: ModelSpec
    detail: Detail
    image_count: int
    max_image_pixels: int
    cache: ImageCache | None

    def key(self) -> tuple[Hashable, ...]:
        """What, besides the bytes, decides the result."""
        return (self.spec.token_rule, self.detail, self.image_count, self.max_image_pixels)


# --------------------------------------------------------------------------- helpers


def is_image_url(value: object) -> bool:
    """True for an ``http://`` or ``https://`` URL (scheme case-insensitive).

    >>> is_image_url("https://example.com/a.png"), is_image_url("/tmp/a.png")
    (True, False)
    """
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


def is_data_uri(value: object) -> bool:
    """True for a ``data:`` URI (well-formedness is checked by :func:`prepare_image`).

    >>> is_data_uri("data:image/png;base64,iVBORw0KGgo="), is_data_uri("a.png")
    (True, False)
    """
    return isinstance(value, str) and value[:5].lower() == "data:"


def _shorten(text: str, limit: int = _LABEL_MAX) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _redact_url(url: str) -> str:
    """``scheme://host[:port]/path`` without userinfo; a query or fragment becomes ``?…``."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<malformed URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    path = parts.path if len(parts.path) <= 80 else parts.path[:79] + "…"
    suffix = "?…" if parts.query or parts.fragment else ""
    return f"{parts.scheme.lower()}://{netloc}{path}{suffix}"


def _nbytes(data: bytes | bytearray | memoryview) -> int:
    return data.nbytes if isinstance(data, memoryview) else len(data)


def _digest(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=20).digest()


def _data_uri(data: bytes | bytearray | memoryview, mime: str) -> str:
    return f"data:{mime};base64,{binascii.b2a_base64(data, newline=False).decode('ascii')}"


def _resolve_spec(model: str | ModelSpec | None) -> ModelSpec:
    return _NO_MODEL if model is None else get_model_spec(model)


def _resolve_detail(detail: object, spec: ModelSpec, label: str) -> Detail:
    if detail is None:
        return spec.default_detail
    for known in _DETAILS:
        if detail == known and isinstance(detail, str):
            return known
    raise ImageInputError(label, f"detail must be one of 'low', 'high', 'auto', got {detail!r}")


def _cached(
    key: tuple[Hashable, ...],
    label: str,
    opts: _Options,
    compute: Callable[[], PreparedImage],
) -> PreparedImage:
    cache = opts.cache
    if cache is None:
        return compute()
    full_key = (*key, *opts.key())
    hit = cache.get(full_key)
    if hit is not None:
        return hit if hit.source_label == label else dataclasses.replace(hit, source_label=label)
    result = compute()
    cache.put(full_key, result)
    return result


# --------------------------------------------------------------------------- decoding


def _open(data: bytes | bytearray | memoryview, label: str, max_pixels: int) -> Image.Image:
    """Parse the header only (lazy); Pillow's bomb warning becomes an error or is moot."""
    limit = Image.MAX_IMAGE_PIXELS
    bomb_action: Literal["error", "ignore"] = (
        "error" if limit is not None and max_pixels <= limit else "ignore"
    )
    buffer = io.BytesIO(data)
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's chatter about damaged headers
            warnings.simplefilter(bomb_action, Image.DecompressionBombWarning)
            Image.init()
            formats = tuple(f for f in Image.ID if f not in _UNSAFE_FORMATS)
            return Image.open(buffer, formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageInputError(label, f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise ImageInputError(label, _not_an_image_reason(data)) from None
    except Exception as exc:
        raise ImageInputError(label, f"corrupt image header: {_exc_text(exc)}") from None


def _exc_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _not_an_image_reason(data: bytes | bytearray | memoryview) -> str:
    head = bytes(data[:64]).lstrip()
    reason = "not an image (Pillow cannot identify the format)"
    if head[:1] == b"<":
        return reason + "; it looks like HTML/XML/SVG text (SVG is not supported)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return reason
    if all(c.isprintable() or c.isspace() for c in text):
        return reason + "; it looks like text"
    return reason


def _check_size(width: int, height: int, label: str, opts: _Options) -> None:
    if width < 1 or height < 1:
        raise ImageInputError(label, f"image has no pixels ({width}x{height})")
    if width * height > opts.max_image_pixels:
        raise ImageInputError(
            label,
            f"decompression bomb refused: {width}x{height} = {width * height:,} pixels exceeds "
            f"max_image_pixels={opts.max_image_pixels:,}",
        )
    ratio_limit = opts.spec.token_rule.max_aspect_ratio
    ratio = max(width, height) / min(width, height)
    if ratio_limit is not None and ratio > ratio_limit:
        raise ImageInputError(
            label,
            f"aspect ratio {ratio:.0f}:1 ({width}x{height}) exceeds {ratio_limit:g}:1, "
            f"which {opts.spec.id} refuses; crop or pad the image",
        )


def _orientation(img: Image.Image) -> int:
    """EXIF orientation 1..8 read from the header (never decodes pixels)."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1  # PngImageFile.getexif() would decode the whole image to look further
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _frame_count(img: Image.Image, label: str) -> int:
    if img.format == "MPO":
        return 1  # a JPEG with an extra (depth/preview) image, not an animation
    try:
        return int(getattr(img, "n_frames", 1))
    except Exception as exc:
        raise ImageInputError(label, f"truncated or corrupt image: {_exc_text(exc)}") from None


def _load(img: Image.Image, label: str) -> None:
    """Decode the pixels; every failure is the input's fault."""
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageInputError(label, f"decompression bomb refused: {exc}") from None
    except Exception as exc:
        raise ImageInputError(label, f"truncated or corrupt image: {_exc_text(exc)}") from None


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _is_graphic(img: Image.Image) -> bool:
    """Palette or bilevel art: lossless PNG keeps it small and sharp."""
    return img.mode in ("1", "P", "PA")


def _stretch_to_l(img: Image.Image) -> Image.Image:
    """32-bit integer or float image to 8-bit grey, stretched over its own range."""
    work = img if img.mode in ("I", "F") else img.convert("I")
    low, high = cast(tuple[float, float], work.getextrema())
    if not (math.isfinite(low) and math.isfinite(high)):
        scale, offset = 0.0, 0.0
    elif high <= low:  # a constant image keeps its value, clipped to 0..255
        scale, offset = 0.0, min(max(low, 0.0), 255.0)
    else:
        scale = 255.0 / (high - low)
        offset = -low * scale
    return work.point(lambda v: v * scale + offset).convert("L")


def _to_working_mode(img: Image.Image) -> Image.Image:
    """A mode that resizes well and that PNG/JPEG/WEBP can store (RGB, RGBA, L, LA)."""
    mode = img.mode
    if mode in ("RGB", "L") and "transparency" in img.info:
        return img.convert("RGBA")
    if mode in ("RGB", "RGBA", "L", "LA"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I;16"):
        return img.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if mode in ("I", "F"):
        return _stretch_to_l(img)
    if mode == "La":
        return img.convert("LA")
    return img.convert("RGBA" if _has_alpha(img) else "RGB")


def _drop_opaque_alpha(img: Image.Image) -> Image.Image:
    if img.mode not in ("RGBA", "LA"):
        return img
    if img.getchannel("A").getextrema() == (255, 255):
        return img.convert("RGB" if img.mode == "RGBA" else "L")
    return img


_REDUCING_GAP: Final = 3.0
# BICUBIC, as the servers' own image processors resize (Qwen2-VL/2.5-VL and GLM-4.1V
# ``resample=BICUBIC``, InternVL's ``T.Resize(..., BICUBIC)``): an image we shrink to the
# exact size the server keeps gets (to within rounding, see ``_resize``) the pixels a
# Pillow-backed server would have made from the original. LANCZOS differed from it by
# ~52 dB PSNR on the benchmark photo (far below JPEG q90's own error, ~39 dB) and made
# the 24 MP -> 12.7 MP resize 1.3x slower.
_RESAMPLE: Final = Image.Resampling.BICUBIC
# Mild downsizing of big images (high detail: a 24 MP photo to the 12.7 MP Qwen keeps)
# is the slowest step of preparing an image; Pillow releases the GIL while resizing,
# so it is done in strips by two threads, each strip resized from the full source with
# ``box`` (the filter reads past the box). Pillow may order a strip's two passes
# differently from a whole resize, so a pixel can differ by a few levels (the benchmark
# photo: at most 3 of 255, 54 dB PSNR; JPEG q90 itself is ~39 dB).
_PARALLEL_RESIZE_MIN_PIXELS: Final = 4_000_000
_CPUS: Final = os.cpu_count() or 1
# Per strip, the intermediate image of a big reduction (see ``_resize``).
_RESIZE_STRIP_BYTES: Final = 16 << 20


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """BICUBIC resize to ``size``.

    A big, mild reduction is resized as horizontal strips (Pillow resizes a ``box`` of
    the source exactly as that part of the whole resize): two threads take turns
    (Pillow releases the GIL), and each strip's intermediate image (Pillow resizes
    rows, then columns) is a slice of the ``dst_w x src_h`` one a single call makes:
    100 MiB for 48 MP -> 12.7 MP, next to the 183 MiB of decoded source.
    """
    src_w, src_h = img.size
    dst_w, dst_h = size
    if (
        src_w * src_h < _PARALLEL_RESIZE_MIN_PIXELS
        or dst_h < 2
        or max(src_w / dst_w, src_h / dst_h) >= _REDUCING_GAP  # reduce() first: keep it simple
    ):
        return img.resize(size, _RESAMPLE, reducing_gap=_REDUCING_GAP)
    pairs = math.ceil(dst_w * src_h * 4 / _RESIZE_STRIP_BYTES / 2)  # even: both threads busy
    strips = min(dst_h, 2 * max(1, pairs))
    rows = [dst_h * index // strips for index in range(strips + 1)]
    out = Image.new(img.mode, size, None)  # not filled: every row is pasted over
    failure: list[BaseException] = []

    def resize_strips(first: int) -> None:
        try:  # strips first, first + 2, ...: disjoint rows of ``out``
            for index in range(first, strips, 2):
                top, bottom = rows[index], rows[index + 1]
                box = (0.0, top * src_h / dst_h, float(src_w), bottom * src_h / dst_h)
                out.paste(img.resize((dst_w, bottom - top), _RESAMPLE, box=box), (0, top))
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    if _CPUS < 2:
        resize_strips(0)
        resize_strips(1)
    else:
        helper = threading.Thread(
            target=resize_strips, args=(1,), name="siliconvision-resize", daemon=True
        )
        helper.start()
        try:
            resize_strips(0)
        finally:
            helper.join()
    if failure:
        raise failure[0]
    return out


def _render(
    img: Image.Image, target: tuple[int, int] | None, orientation: int
) -> tuple[Image.Image, bool]:
    """Working-mode, resized (to ``target``, display orientation) and upright pixels."""
    work = _to_working_mode(img)
    resized = False
    if target is not None:
        stored = (target[1], target[0]) if orientation >= 5 else target
        if work.size != stored:
            work = _resize(work, stored)
        resized = True
    if orientation != 1:
        work = work.transpose(_TRANSPOSE[orientation])
    return work, resized


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=_JPEG_QUALITY)
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=_WEBP_QUALITY, method=4)
    else:
        # zlib level 6: optimize=True measured 2-5x slower for at most ~3% fewer bytes.
        img.save(buf, "PNG", compress_level=6, icc_profile=None, transparency=None)
    return buf.getvalue()


def _encode_best(img: Image.Image, source_format: str | None, graphic: bool) -> tuple[bytes, str]:
    """Encode for the server: keep JPEG/PNG/WEBP, otherwise PNG or JPEG (see module doc)."""
    if source_format in ("JPEG", "MPO") and img.mode in ("RGB", "L"):
        return _encode(img, "JPEG"), "JPEG"
    if source_format == "PNG":
        return _encode(img, "PNG"), "PNG"
    if source_format == "WEBP":
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGBA" if img.mode == "LA" else "RGB")
        return _encode(img, "WEBP"), "WEBP"
    img = _drop_opaque_alpha(img)
    if graphic or img.mode in ("RGBA", "LA"):
        return _encode(img, "PNG"), "PNG"
    if img.width * img.height >= _JPEG_MIN_PIXELS:
        return _encode(img, "JPEG"), "JPEG"
    png, jpeg = _encode(img, "PNG"), _encode(img, "JPEG")
    return (jpeg, "JPEG") if len(jpeg) < len(png) else (png, "PNG")


def _reencode(
    img: Image.Image,
    *,
    source_format: str | None,
    target: tuple[int, int] | None,
    orientation: int,
    label: str,
) -> tuple[bytes, str, tuple[int, int], bool]:
    """Decoded image -> (bytes, Pillow format, sent size, resized)."""
    graphic = _is_graphic(img)
    try:
        work, resized = _render(img, target, orientation)
        data, fmt = _encode_best(work, source_format, graphic)
    except ImageInputError:
        raise
    except Exception as exc:
        raise ImageInputError(
            label,
            f"unsupported image ({img.format or 'unknown format'}, mode {img.mode}): "
            f"{_exc_text(exc)}",
        ) from None
    return data, fmt, work.size, resized


# --------------------------------------------------------------------------- core


def _passthrough(
    data: bytes | bytearray | memoryview,
    plan: _Plan,
    label: str,
    opts: _Options,
    original_uri: str | Base64Image | None,
) -> PreparedImage:
    mime = _MIME[plan.fmt]
    if isinstance(original_uri, Base64Image):  # its data is clean base64 of these bytes
        url = f"data:{mime};base64,{original_uri.data}"
    elif original_uri is not None and original_uri.startswith(f"data:{mime};base64,"):
        url = original_uri
    else:
        url = _data_uri(data, mime)
    return PreparedImage(
        url=url,
        detail=opts.detail,
        mime_type=mime,
        width=plan.size[0],
        height=plan.size[1],
        original_width=plan.size[0],
        original_height=plan.size[1],
        original_format=plan.fmt,
        byte_size=_nbytes(data),
        resized=False,
        reencoded=False,
        source_label=label,
    )


def _encoded_result(
    data: bytes,
    fmt: str,
    size: tuple[int, int],
    original: tuple[int, int],
    original_format: str | None,
    resized: bool,
    label: str,
    opts: _Options,
) -> PreparedImage:
    mime = _MIME[fmt]
    return PreparedImage(
        url=_data_uri(data, mime),
        detail=opts.detail,
        mime_type=mime,
        width=size[0],
        height=size[1],
        original_width=original[0],
        original_height=original[1],
        original_format=original_format,
        byte_size=len(data),
        resized=resized,
        reencoded=True,
        source_label=label,
    )


def _target(size: tuple[int, int], opts: _Options) -> tuple[int, int] | None:
    return client_target_size(
        size[0], size[1], model=opts.spec, detail=opts.detail, image_count=opts.image_count
    )


@dataclass(frozen=True)
class _Plan:
    """What to do with an opened image, decided from its header alone."""

    fmt: str
    size: tuple[int, int]
    shown: tuple[int, int]  # size as displayed (EXIF orientation applied)
    orientation: int
    target: tuple[int, int] | None
    sendable: bool  # the original bytes may go to the server as they are
    out_format: str | None  # format to re-encode in; None: PNG/JPEG by content


def _plan(img: Image.Image, label: str, opts: _Options) -> _Plan:
    fmt = img.format or "unknown"
    width, height = img.size
    _check_size(width, height, label, opts)
    orientation = _orientation(img)
    shown = (height, width) if orientation >= 5 else (width, height)
    still = _frame_count(img, label) == 1
    sendable = still and orientation == 1 and img.mode in _SENDABLE_MODES.get(fmt, ())
    keeps_format = still and fmt in ("JPEG", "MPO", "PNG", "WEBP")
    return _Plan(
        fmt=fmt,
        size=(width, height),
        shown=shown,
        orientation=orientation,
        target=_target(shown, opts),
        sendable=sendable,
        out_format=("JPEG" if fmt == "MPO" else fmt) if keeps_format else None,
    )


def _prepare_bytes(
    data: bytes | bytearray | memoryview,
    label: str,
    opts: _Options,
    original_uri: str | Base64Image | None = None,
) -> PreparedImage:
    """Validate, maybe downsize/convert, and encode encoded image bytes.

    ``original_uri``: a clean data URI of exactly these bytes, reused when they pass
    through with the same MIME type (saves a base64 round); or a clean
    :class:`Base64Image` of them, whose data the URI sent is built from.
    """
    if _nbytes(data) == 0:
        raise ImageInputError(label, "empty (0 bytes)")
    with _open(data, label, opts.max_image_pixels) as img:
        plan = _plan(img, label, opts)
        is_jpeg = plan.fmt in ("JPEG", "MPO")
        if plan.sendable and plan.target is None:
            if is_jpeg:
                img.draft(img.mode, (1, 1))  # still reads every byte: truncation is caught
            _load(img, label)
            return _passthrough(data, plan, label, opts, original_uri)
        if plan.target is not None and is_jpeg:
            target = plan.target
            img.draft(img.mode, (target[1], target[0]) if plan.orientation >= 5 else target)
        _load(img, label)
        encoded, out_fmt, size, resized = _reencode(
            img,
            source_format=plan.out_format,
            target=plan.target,
            orientation=plan.orientation,
            label=label,
        )
    if plan.sendable and len(encoded) >= _nbytes(data):
        return _passthrough(data, plan, label, opts, original_uri)  # re-encoding did not pay
    return _encoded_result(encoded, out_fmt, size, plan.shown, plan.fmt, resized, label, opts)


def _prepare_pil(img: Image.Image, label: str, opts: _Options) -> PreparedImage:
    """Encode a caller's ``PIL.Image`` (never modified; current frame; not cached)."""
    width, height = img.size
    _check_size(width, height, label, opts)
    _load(img, label)
    orientation = _orientation(img)
    shown = (height, width) if orientation >= 5 else (width, height)
    target = _target(shown, opts)
    fmt = img.format if img.format in ("JPEG", "MPO", "PNG", "WEBP") else None
    if fmt is not None and getattr(img, "n_frames", 1) > 1 and fmt != "MPO":
        fmt = None
    encoded, out_fmt, size, resized = _reencode(
        img, source_format=fmt, target=target, orientation=orientation, label=label
    )
    return _encoded_result(encoded, out_fmt, size, shown, img.format, resized, label, opts)


_JPEG_EOI: Final = b"\xff\xd9"
_PNG_MAX_CHUNKS: Final = 100_000


def _intact(img: Image.Image, data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is structurally whole, read without decoding any pixels: JPEG has
    an end-of-image marker after its first scan (0xFF 0xD9 cannot occur inside
    entropy-coded data), PNG's chunks run whole up to IEND, WEBP's RIFF size fits, GIF
    ends with its trailer. False means "not sure": decode to find out."""
    size = _nbytes(data)
    fmt = img.format
    if fmt in ("JPEG", "MPO"):
        if bytes(data[-2:]) == _JPEG_EOI:
            return True
        fp = getattr(img, "fp", None)  # just past the first scan's header
        if isinstance(data, memoryview) or fp is None:
            return False
        return data.rfind(_JPEG_EOI, fp.tell()) >= 0  # data appended after the image
    if fmt == "PNG":
        pos = 8
        for _ in range(_PNG_MAX_CHUNKS):
            if pos + 12 > size:
                return False
            length, kind = struct.unpack_from(">I4s", data, pos)
            pos += 12 + int(length)
            if kind == b"IEND":
                return pos <= size
        return False
    if fmt == "WEBP":
        return size >= 12 and int.from_bytes(data[4:8], "little") + 8 <= size
    if fmt == "GIF":
        return bytes(data[-1:]) == b";"
    return False


def _encode_bytes(
    data: bytes | bytearray | memoryview, label: str, opts: _Options, payload: str | None = None
) -> EncodedImage:
    """:func:`encode_image` for encoded bytes (``payload``: their base64, if known)."""
    if _nbytes(data) == 0:
        raise ImageInputError(label, "empty (0 bytes)")
    with _open(data, label, opts.max_image_pixels) as img:
        fmt = img.format or "unknown"
        width, height = img.size
        _check_size(width, height, label, opts)
        mime = _MIME.get(fmt)
        if mime is not None:
            whole = _intact(img, data)
            _frame_count(img, label)
            if not whole:  # cut short, or a harmless quirk: decoding tells (as prepare_image)
                if fmt in ("JPEG", "MPO"):
                    img.draft(img.mode, (1, 1))  # still reads every byte: truncation is caught
                _load(img, label)
    if mime is None:  # a format servers do not take: converted as prepare_image does
        return _encoded_from(_prepare_bytes(data, label, opts))
    if payload is None:
        payload = binascii.b2a_base64(data, newline=False).decode("ascii")
    return EncodedImage(payload, mime, width, height, fmt, _nbytes(data), False, label)


def _encoded_from(prepared: PreparedImage) -> EncodedImage:
    return EncodedImage(
        data=prepared.url.partition(",")[2],
        mime_type=prepared.mime_type or "",
        width=prepared.width or 0,
        height=prepared.height or 0,
        original_format=prepared.original_format or "unknown",
        byte_size=prepared.byte_size,
        converted=True,
        source_label=prepared.source_label,
    )


# --------------------------------------------------------------------------- sources


def _missing_reason(path: str | bytes, detail: str = "") -> str:
    text = os.fsdecode(path)
    reason = "file does not exist" + (f" ({detail})" if detail else "")
    if "://" in text[:16]:
        return reason + "; only http:// and https:// URLs are taken"
    if len(text) > 200 and _B64_BODY.fullmatch(text[:200].rstrip("=")):
        return reason + "; raw base64? pass data:image/<type>;base64,<payload> or bytes"
    return reason


def _stat_file(path: str | bytes, label: str, max_bytes: int) -> tuple[str, os.stat_result]:
    """The resolved path and ``stat`` of a local image file, checked by the core file
    policy (:func:`siliconvision.guards.check_local_file`) before anything is opened."""
    try:
        real = os.path.realpath(os.fsdecode(path))
        st = os.stat(real)
    except FileNotFoundError:
        raise ImageInputError(label, _missing_reason(path)) from None
    except PermissionError:
        raise ImageInputError(label, "unreadable (permission denied)") from None
    except (OSError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else "invalid path"
        raise ImageInputError(label, _missing_reason(path, detail)) from None
    try:
        check_local_file(real, st, max_bytes=max_bytes)
    except LocalFileError as exc:
        raise ImageInputError(label, exc.reason) from None
    return real, st


def _path_key(st: os.stat_result) -> tuple[Hashable, ...]:
    """The file's identity for the cache: (device, inode, size, mtime, ctime)."""
    return ("path", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_path(path: str | bytes, label: str, opts: _Options, max_bytes: int) -> PreparedImage:
    real, st = _stat_file(path, label, max_bytes)

    def compute() -> PreparedImage:
        return _prepare_bytes(_read_file(real, st, label), label, opts)

    return _cached(_path_key(st), label, opts, compute)


def _read_file(real: str, st: os.stat_result, label: str) -> bytes:
    """The bytes of a file :func:`_stat_file` accepted: the file checked, nothing more."""
    try:
        return read_checked_file(real, st)
    except LocalFileError as exc:
        raise ImageInputError(label, exc.reason) from None


def _prepare_buffer(
    data: bytes | bytearray | memoryview,
    label: str,
    opts: _Options,
    original_uri: str | Base64Image | None = None,
) -> PreparedImage:
    if _nbytes(data) == 0:
        raise ImageInputError(label, "empty (0 bytes)")
    if opts.cache is None:
        return _prepare_bytes(data, label, opts, original_uri)
    return _cached(
        ("bytes", _digest(data)),
        label,
        opts,
        lambda: _prepare_bytes(data, label, opts, original_uri),
    )


def _as_flat_bytes(view: memoryview) -> memoryview:
    if view.c_contiguous:
        return view.cast("B") if (view.ndim != 1 or view.format != "B") else view
    return memoryview(view.tobytes())


def _read_stream(stream: Any, label: str) -> bytes | bytearray | memoryview:
    if isinstance(stream, io.TextIOBase):
        raise ImageInputError(label, "file object is in text mode; open it with 'rb'")
    try:
        data = stream.read()
    except (OSError, ValueError) as exc:
        raise ImageInputError(label, f"unreadable: {_exc_text(exc)}") from None
    if isinstance(data, str):
        raise ImageInputError(label, "file object is in text mode; open it with 'rb'")
    if isinstance(data, memoryview):
        return _as_flat_bytes(data)
    if not isinstance(data, (bytes, bytearray)):
        raise ImageInputError(
            label, f"file object's read() returned {type(data).__name__}, not bytes"
        )
    return data


_DATA_URI_HEADER: Final = re.compile(
    r"data:(image/[a-z0-9][a-z0-9!#$&^_.+-]*)((?:;[a-z0-9!#$&^_.+-]+=[^;,]*)*);base64",
    re.IGNORECASE,
)
_B64_BODY: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_WHITESPACE: Final = re.compile(r"\s+")


def _decode_data_uri(uri: str, label: str) -> tuple[bytes, bool]:
    """(payload bytes, whether ``uri`` is already in canonical form)."""
    comma = uri.find(",")
    header = _DATA_URI_HEADER.fullmatch(uri, 0, comma) if comma > 0 else None
    if header is None:
        raise ImageInputError(
            label, "malformed data URI: expected data:image/<type>;base64,<payload>"
        )
    data, clean = _decode_base64(uri[comma + 1 :], label, "malformed data URI")
    canonical = clean and not header.group(2) and uri.startswith("data:image/")
    return data, canonical and header.group(1) == header.group(1).lower()


def _base64_header(image: Base64Image, label: str) -> str:
    """``data:<mime>;base64``, the header of the data URI ``image`` stands for."""
    header = f"data:{image.mime_type};base64"
    if _DATA_URI_HEADER.fullmatch(header) is None:
        raise ImageInputError(label, f"mime_type {image.mime_type!r} is not image/<type>")
    return header


def _decode_base64(payload: str, label: str, what: str) -> tuple[bytes, bool]:
    """(bytes, whether ``payload`` was clean: no whitespace or stray characters)."""
    if sys.version_info >= (3, 11):
        # Strict decoding validates while it decodes (no separate regex pass over
        # megabytes); anything it refuses takes the lenient path below.
        try:
            return binascii.a2b_base64(payload, strict_mode=True), True
        except binascii.Error:
            pass
    clean = True
    if _B64_BODY.fullmatch(payload) is None:
        payload = _WHITESPACE.sub("", payload)
        clean = False
        if _B64_BODY.fullmatch(payload) is None:
            raise ImageInputError(label, f"{what}: invalid base64 payload")
    try:
        data = binascii.a2b_base64(payload)
    except binascii.Error as exc:
        raise ImageInputError(label, f"{what}: invalid base64 payload ({exc})") from None
    return data, clean


_HASH_CHUNK: Final = 1 << 20


def _text_digest(*texts: str) -> bytes:
    """SHA-256 of the ASCII ``texts`` joined, a megabyte at a time (no full copy)."""
    digest = hashlib.sha256()
    for text in texts:
        for start in range(0, len(text), _HASH_CHUNK):
            digest.update(text[start : start + _HASH_CHUNK].encode("ascii"))
    return digest.digest()


def _prepare_data_uri(uri: str | Base64Image, label: str, opts: _Options) -> PreparedImage:
    """A ``data:`` URI, or a :class:`Base64Image` as the equivalent URI (same cache
    entries) without building that URI unless the bytes are sent as they are."""
    cache = opts.cache
    text_key: tuple[Hashable, ...] | None = None
    texts = (uri,) if isinstance(uri, str) else (_base64_header(uri, label) + ",", uri.data)
    if cache is not None and all(text.isascii() for text in texts):
        # The same URI text again (a message re-sent with its history, an image in
        # every question) is found by a SHA-256 of the text, without decoding its
        # base64 (hashing is about 2.5x faster than decoding, and the decoded bytes
        # need hashing too). The entry is also stored under its bytes' digest, so
        # this counts its bytes twice against ``max_bytes``: it evicts early, never late.
        # A block made by encode_image (image_block) and sent again: digest remembered.
        known = None if isinstance(uri, str) else cache._text_digest(uri.data, texts[0])
        digest = known if known is not None else _text_digest(*texts)
        if known is None and not isinstance(uri, str):
            cache._remember_text_digest(uri.data, texts[0], digest)
        text_key = ("data-uri", digest, *opts.key())
        hit = cache._peek(text_key)
        if hit is not None:
            same = hit.source_label == label
            return hit if same else dataclasses.replace(hit, source_label=label)
    if isinstance(uri, str):
        data, canonical = _decode_data_uri(uri, label)
    else:
        data, canonical = _decode_base64(uri.data, label, "malformed base64 image")
    result = _prepare_buffer(data, label, opts, uri if canonical else None)
    if cache is not None and text_key is not None:
        cache.put(text_key, result)
    return result


def _check_url(url: str, label: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise ImageInputError(label, f"malformed URL: {exc}") from None
    if not host:
        raise ImageInputError(label, "malformed URL: no host")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ImageInputError(label, "malformed URL: contains whitespace or control characters")


def _prepare_url(
    url: str,
    label: str,
    opts: _Options,
    *,
    fetch: bool,
    timeout: float,
    max_bytes: int,
    url_check: UrlCheck | None = None,
    allow_private: bool = False,
) -> PreparedImage:
    _check_url(url, label)
    if fetch:
        data = fetch_url(
            url,
            label=label,
            allow_private=allow_private,
            url_check=url_check,
            timeout=timeout,
            max_bytes=max_bytes,
        )
        return _prepare_buffer(data, label, opts)
    if not opts.spec.accepts_image_urls:
        raise ImageInputError(
            label,
            f"{opts.spec.id} takes base64 images only, not URLs; pass fetch_urls=True "
            "or a local file",
        )
    return PreparedImage(
        url=url,
        detail=opts.detail,
        mime_type=None,
        width=None,
        height=None,
        original_width=None,
        original_height=None,
        original_format=None,
        byte_size=0,
        resized=False,
        reencoded=False,
        source_label=label,
    )


def _label(source: object) -> str:
    """A short human name for ``source``, safe to show (URLs are redacted)."""
    if isinstance(source, str):
        if is_image_url(source):
            return _redact_url(source)
        if is_data_uri(source):
            mime = source[5 : source.find(";")] if 0 < source.find(";") < 64 else "?"
            return f"<data URI {mime}, {len(source):,} chars>"
        return _shorten(source)
    if isinstance(source, os.PathLike):
        return _shorten(os.fsdecode(os.fspath(source)))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{type(source).__name__} of {_nbytes(source):,} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL.Image {source.mode} {source.width}x{source.height}>"
    if isinstance(source, Base64Image):
        return f"<base64 {_shorten(source.mime_type, 40)}, {len(source.data):,} chars>"
    name = getattr(source, "name", None)
    if callable(getattr(source, "read", None)):
        return _shorten(name) if isinstance(name, str) and name else f"<{type(source).__name__}>"
    return f"<{type(source).__name__}>"


# --------------------------------------------------------------------------- public


def prepare_image(
    source: ImageSource,
    *,
    model: str | ModelSpec | None = None,
    detail: Detail | None = None,
    image_count: int = 1,
    fetch_urls: bool = False,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    cache: ImageCache | None = DEFAULT_CACHE,
    fetch_timeout: float = 30.0,
    max_fetch_bytes: int = DEFAULT_MAX_FILE_BYTES,
    url_check: UrlCheck | None = None,
    allow_private_urls: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> PreparedImage:
    """Validate ``source`` and encode it for ``model`` (see the module doc for the rules).

    ``detail=None`` uses the model's catalog default; ``model=None`` never resizes.
    ``image_count`` is how many images the request carries (DeepSeek-VL2 shrinks every
    image to one tile beyond two). Raises :class:`ImageInputError` for bad input.

    A local path is read only if it is a regular file of at most ``max_file_bytes``
    (checked with ``stat`` before it is opened; no FIFOs, devices, ``/proc``).
    With ``fetch_urls=True``, a URL is fetched through the SSRF guard
    (:func:`siliconvision.guards.fetch_url`): the URL and every redirect hop are
    checked with :func:`~siliconvision.guards.check_image_url` (or with ``url_check``,
    which replaces it; raising refuses the fetch), and so is the address of every
    connection; ``allow_private_urls=True`` lifts the address checks (trusted URLs).

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (6000, 4000)).save(buf, "JPEG")
        >>> p = prepare_image(buf.getvalue(), model="Qwen/Qwen2.5-VL-72B-Instruct")
        >>> (p.width, p.height, p.resized, p.detail)
        (4368, 2912, True, 'high')
    """
    label = _label(source)
    spec = _resolve_spec(model)
    resolved = _resolve_detail(detail, spec, label)
    if isinstance(image_count, bool) or not isinstance(image_count, int) or image_count < 1:
        raise ValueError(f"image_count must be an int >= 1, got {image_count!r}")
    if max_image_pixels < 1:
        raise ValueError(f"max_image_pixels must be >= 1, got {max_image_pixels!r}")
    opts = _Options(spec, resolved, image_count, max_image_pixels, cache)
    if isinstance(source, str):
        if is_image_url(source):
            return _prepare_url(
                source,
                label,
                opts,
                fetch=fetch_urls,
                timeout=fetch_timeout,
                max_bytes=max_fetch_bytes,
                url_check=url_check,
                allow_private=allow_private_urls,
            )
        if is_data_uri(source):
            return _prepare_data_uri(source, label, opts)
        return _read_path(source, label, opts, max_file_bytes)
    if isinstance(source, os.PathLike):
        return _read_path(os.fspath(source), label, opts, max_file_bytes)
    if isinstance(source, memoryview):
        return _prepare_buffer(_as_flat_bytes(source), label, opts)
    if isinstance(source, (bytes, bytearray)):
        return _prepare_buffer(source, label, opts)
    if isinstance(source, Image.Image):
        return _prepare_pil(source, label, opts)
    if isinstance(source, Base64Image):
        return _prepare_data_uri(source, label, opts)
    if callable(getattr(source, "read", None)):
        return _prepare_buffer(_read_stream(source, label), label, opts)
    raise _unsupported(source, label)


def _unsupported(source: object, label: str) -> ImageInputError:
    return ImageInputError(
        label,
        f"unsupported image source type {type(source).__name__}; expected a path, URL, "
        "data URI, bytes, binary file object, PIL.Image or Base64Image",
    )


def image_part(
    source: ImageSource,
    *,
    model: str | ModelSpec | None = None,
    detail: Detail | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """``prepare_image(source, ...).to_part()``: the ``image_url`` content part.

    >>> image_part("https://example.com/a.png", detail="low")
    {'type': 'image_url', 'image_url': {'url': 'https://example.com/a.png', 'detail': 'low'}}
    """
    return prepare_image(source, model=model, detail=detail, **kwargs).to_part()


def encode_image(
    source: ImageSource,
    *,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    cache: ImageCache | None = DEFAULT_CACHE,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> EncodedImage:
    """``source``'s own bytes as base64, validated without decoding its pixels: what a
    base64 image block holds until a chat model prepares it (once) for the model it sends to.

    ``source`` is anything :func:`prepare_image` takes but an http(s) URL. The real
    format is sniffed from the bytes, and the header is checked as :func:`prepare_image`
    checks it (not an image, corrupt header, decompression bomb, no pixels). JPEG, PNG,
    WEBP and GIF bytes are kept as they are when their structure is whole (an end
    marker after the image data, PNG chunks that fit), without decoding; bytes cut short
    (or with a harmless quirk, such as a missing end marker) are decoded to tell which.
    Damage inside well-formed compressed data is found when the image is prepared for
    sending, still before any request. Other formats (TIFF, BMP, ...) and ``PIL.Image``
    sources are converted as :func:`prepare_image` converts them (``converted=True``).
    Paths are cached by file identity, like :func:`prepare_image`'s, and read under the
    same file policy (a regular file of at most ``max_file_bytes``).

    Example:
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (4000, 3000)).save(buf, "JPEG")
        >>> encoded = encode_image(buf.getvalue())
        >>> (encoded.mime_type, encoded.width, encoded.byte_size == len(buf.getvalue()))
        ('image/jpeg', 4000, True)
    """
    label = _label(source)
    if max_image_pixels < 1:
        raise ValueError(f"max_image_pixels must be >= 1, got {max_image_pixels!r}")
    opts = _Options(_NO_MODEL, _NO_MODEL.default_detail, 1, max_image_pixels, cache)
    if isinstance(source, str) and is_image_url(source):
        raise ImageInputError(label, "an http(s) URL has no bytes to encode; send it as a URL")
    if isinstance(source, str) and is_data_uri(source):
        data, canonical = _decode_data_uri(source, label)
        return _encode_bytes(data, label, opts, source.partition(",")[2] if canonical else None)
    if isinstance(source, (str, os.PathLike)):
        real, st = _stat_file(os.fspath(source), label, max_file_bytes)
        key = ("base64", *_path_key(st), max_image_pixels)
        hit = cache._lookup(key, count_miss=True) if cache is not None else None
        if isinstance(hit, EncodedImage):
            same = hit.source_label == label
            return hit if same else dataclasses.replace(hit, source_label=label)
        result = _encode_bytes(_read_file(real, st, label), label, opts)
        if cache is not None:
            cache.put(key, result)
        return result
    if isinstance(source, memoryview):
        return _encode_bytes(_as_flat_bytes(source), label, opts)
    if isinstance(source, (bytes, bytearray)):
        return _encode_bytes(source, label, opts)
    if isinstance(source, Image.Image):
        return _encoded_from(_prepare_pil(source, label, opts))
    if isinstance(source, Base64Image):
        _base64_header(source, label)
        data, clean = _decode_base64(source.data, label, "malformed base64 image")
        return _encode_bytes(data, label, opts, source.data if clean else None)
    if callable(getattr(source, "read", None)):
        return _encode_bytes(_read_stream(source, label), label, opts)
    raise _unsupported(source, label)
