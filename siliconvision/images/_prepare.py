"""The public entry points: :func:`prepare_image`, :func:`image_part`, :func:`encode_image`.

Each tells its source apart once (:func:`~._sources.open_source`), then handles the
three things a source can be: a URL, pixels, or encoded bytes, which are looked up in
the cache before they are read, by what identifies them cheapest (a file's identity,
base64 text's digest, bytes' digest).
"""

from __future__ import annotations

import hashlib
from typing import Any

from typing_extensions import assert_never

from ..catalog import Detail, ModelSpec, as_detail, detail_error, get_model_spec
from ..errors import ImageInputError
from ..guards import DEFAULT_MAX_FILE_BYTES, UrlCheck, fetch_url
from ._cache import DEFAULT_CACHE, ImageCache, cached, relabelled
from ._decode import DEFAULT_MAX_IMAGE_PIXELS
from ._pipeline import (
    NO_MODEL,
    Options,
    as_encoded_image,
    keep_as_base64,
    not_one_image,
    prepare_bytes,
    prepare_pixels,
)
from ._results import EncodedImage, PreparedImage
from ._sources import (
    Base64Text,
    EncodedBytes,
    EncodedSource,
    ImageSource,
    LocalFile,
    PdfBytes,
    Pixels,
    RemoteImage,
    nbytes,
    open_source,
)

__all__ = ["encode_image", "image_part", "prepare_image"]


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
    """Validate ``source`` and encode it for ``model`` (see :mod:`siliconvision.images`
    for the rules).

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
        >>> from PIL import Image as PILImage
        >>> buf = io.BytesIO(); PILImage.new("RGB", (6000, 4000)).save(buf, "JPEG")
        >>> p = prepare_image(buf.getvalue(), model="Qwen/Qwen2.5-VL-72B-Instruct")
        >>> (p.width, p.height, p.resized, p.detail)
        (4368, 2912, True, 'high')
    """
    found = open_source(source, max_file_bytes=max_file_bytes)
    label = found.label
    opts = _options(label, model, detail, image_count, max_image_pixels, cache)
    if isinstance(found, RemoteImage):
        found.check()
        if not fetch_urls:
            return _url_as_is(found, opts)
        data = fetch_url(
            found.url,
            label=label,
            allow_private=allow_private_urls,
            url_check=url_check,
            timeout=fetch_timeout,
            max_bytes=max_fetch_bytes,
        )
        return _prepare_read_bytes(EncodedBytes(data), label, opts)
    elif isinstance(found, Pixels):
        return prepare_pixels(found.image, label, opts)  # never cached: no bytes to key
    elif isinstance(found, EncodedSource):
        return _prepare_encoded(found, label, opts)
    elif isinstance(found, PdfBytes):
        raise not_one_image(label)
    else:
        assert_never(found)


def _options(
    label: str,
    model: str | ModelSpec | None,
    detail: Detail | None,
    image_count: int,
    max_image_pixels: int,
    cache: ImageCache | None,
) -> Options:
    spec = NO_MODEL if model is None else get_model_spec(model)
    resolved = spec.default_detail if detail is None else as_detail(detail)
    if resolved is None:
        raise ImageInputError(label, detail_error(detail))
    if isinstance(image_count, bool) or not isinstance(image_count, int) or image_count < 1:
        raise ValueError(f"image_count must be an int >= 1, got {image_count!r}")
    _check_max_image_pixels(max_image_pixels)
    return Options(spec, resolved, image_count, max_image_pixels, cache)


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
        >>> import io
        >>> from PIL import Image as PILImage
        >>> buf = io.BytesIO(); PILImage.new("RGB", (4000, 3000)).save(buf, "JPEG")
        >>> encoded = encode_image(buf.getvalue())
        >>> (encoded.mime_type, encoded.width, encoded.byte_size == len(buf.getvalue()))
        ('image/jpeg', 4000, True)
    """
    found = open_source(source, max_file_bytes=max_file_bytes)
    label = found.label
    _check_max_image_pixels(max_image_pixels)
    opts = Options(NO_MODEL, NO_MODEL.default_detail, 1, max_image_pixels, cache)
    if isinstance(found, RemoteImage):
        raise ImageInputError(label, "an http(s) URL has no bytes to encode; send it as a URL")
    elif isinstance(found, Pixels):
        return as_encoded_image(prepare_pixels(found.image, label, opts))
    elif isinstance(found, LocalFile):  # found by its identity, unread; other bytes: not cached
        key = ("base64", *found.identity(), max_image_pixels)
        return cached(
            cache, key, label, EncodedImage, lambda: keep_as_base64(found.read(), label, opts)
        )
    elif isinstance(found, EncodedSource):
        return keep_as_base64(found.read(), label, opts)
    elif isinstance(found, PdfBytes):
        raise not_one_image(label)
    else:
        assert_never(found)


def _check_max_image_pixels(max_image_pixels: int) -> None:
    if max_image_pixels < 1:
        raise ValueError(f"max_image_pixels must be >= 1, got {max_image_pixels!r}")


def _url_as_is(image: RemoteImage, opts: Options) -> PreparedImage:
    """An http(s) URL for the server to fetch."""
    if not opts.spec.accepts_image_urls:
        raise ImageInputError(
            image.label,
            f"{opts.spec.id} takes base64 images only, not URLs; pass fetch_urls=True "
            "or a local file",
        )
    return PreparedImage(
        url=image.url,
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
        source_label=image.label,
    )


def _prepare_encoded(source: EncodedSource, label: str, opts: Options) -> PreparedImage:
    """Encoded bytes, found in the cache by what identifies them before they are read:
    a file's identity; base64 text's SHA-256 (about 2.5x faster than decoding it, and
    the decoded bytes would need hashing too); else the bytes' digest."""
    cache = opts.cache
    if isinstance(source, LocalFile):
        key = (*source.identity(), *opts.key())
        return cached(
            cache, key, label, PreparedImage, lambda: prepare_bytes(source.read(), label, opts)
        )
    if isinstance(source, Base64Text) and cache is not None:
        prefix, text = source.uri_text()
        if not (prefix.isascii() and text.isascii()):
            return _prepare_read_bytes(source.read(), label, opts)
        # The same text again (a message re-sent with its history, an image in every
        # question, an image block made by encode_image) is found without decoding. The
        # entry is also stored under its bytes' digest, so this counts its bytes twice
        # against ``max_bytes``: it evicts early, never late.
        text_key = ("data-uri", cache._text_digest(prefix, text), *opts.key())
        hit = cache._peek(text_key)
        if hit is not None:
            return relabelled(hit, label)
        result = _prepare_read_bytes(source.read(), label, opts)
        cache.put(text_key, result)
        return result
    return _prepare_read_bytes(source.read(), label, opts)


def _prepare_read_bytes(source: EncodedBytes, label: str, opts: Options) -> PreparedImage:
    """Bytes in hand, found in the cache by their BLAKE2b digest."""
    if nbytes(source.data) == 0:
        raise ImageInputError(label, "empty (0 bytes)")
    if opts.cache is None:
        return prepare_bytes(source, label, opts)
    digest = hashlib.blake2b(source.data, digest_size=20).digest()
    key = ("bytes", digest, *opts.key())
    return cached(opts.cache, key, label, PreparedImage, lambda: prepare_bytes(source, label, opts))
