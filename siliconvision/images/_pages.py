"""Every image a source stands for: one image, or the selected pages of a PDF.

:func:`prepare_pdf` renders a PDF's pages (:mod:`._pdf`); :func:`prepare_pages` is what
message content uses for any source: a PDF, told by its bytes, becomes its pages, any
other source one image (:func:`~siliconvision.images.prepare_image`). Both find
rendered documents in the cache before reading them, as images are found: a file by its
identity, base64 text by its digest, bytes by theirs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from ..catalog import Detail, ModelSpec
from ..guards import DEFAULT_MAX_FILE_BYTES, UrlCheck, fetch_url
from ._cache import DEFAULT_CACHE, ImageCache, cached, relabelled
from ._decode import DEFAULT_MAX_IMAGE_PIXELS
from ._pdf import DEFAULT_PDF_OPTIONS, PdfOptions, normalize_pages, pdf_error, render_pdf
from ._pipeline import Options, prepare_pixels
from ._prepare import _options, _prepare_encoded, _prepare_read_bytes, _url_as_is
from ._results import PreparedImage, PreparedPdf
from ._sources import (
    Base64Text,
    EncodedBytes,
    EncodedSource,
    ImageSource,
    LocalFile,
    PdfBytes,
    Pixels,
    RemoteImage,
    is_pdf,
    open_source,
    read_source,
    starts_as_pdf,
)

__all__ = ["prepare_pages", "prepare_pdf"]


@dataclass(frozen=True)
class _Wanted:
    """What is asked of a PDF, besides its bytes and the model."""

    pages: tuple[int, ...] | None
    options: PdfOptions
    count_pages: bool  # the image count counted the document as one image
    only_pdf: bool  # anything but a PDF is refused

    def key(self) -> tuple[Hashable, ...]:
        return (self.pages, *self.options.key(), self.count_pages)


@dataclass(frozen=True)
class _Fetch:
    enabled: bool
    timeout: float
    max_bytes: int
    url_check: UrlCheck | None
    allow_private: bool


def prepare_pdf(
    source: ImageSource,
    *,
    model: str | ModelSpec | None = None,
    detail: Detail | None = None,
    pages: Iterable[int] | None = None,
    image_count: int | None = None,
    options: PdfOptions = DEFAULT_PDF_OPTIONS,
    fetch_urls: bool = False,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    cache: ImageCache | None = DEFAULT_CACHE,
    fetch_timeout: float = 30.0,
    max_fetch_bytes: int = DEFAULT_MAX_FILE_BYTES,
    url_check: UrlCheck | None = None,
    allow_private_urls: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> PreparedPdf:
    """Render the selected ``pages`` of a PDF for ``model``: each page once, directly at
    the size the model's server keeps for ``detail``, encoded as one image.

    ``source`` is anything :func:`~siliconvision.images.prepare_image` takes whose
    bytes are a PDF (a path, bytes, a binary file, a ``data:application/pdf;base64,``
    URI, a :class:`~siliconvision.images.Base64Image` of type ``application/pdf``, or
    an http(s) URL with ``fetch_urls=True``: SiliconCloud's models take images, so a
    PDF is always rendered here). ``pages``: page numbers, 1 for the first (default:
    every page, up to ``options.max_pages``). ``image_count``: the images of the whole
    request (default: these pages). ``options`` (:class:`PdfOptions`): the reference
    resolution and the caps; files are read under the core file policy, as images are.

    Raises :class:`~siliconvision.errors.ImageInputError` for anything but a readable
    PDF within the caps, and names the extra when pypdfium2 is missing.

    Example:
        >>> from siliconvision.testing import make_pdf, PdfPage
        >>> pdf = make_pdf([PdfPage(), PdfPage(), PdfPage()])
        >>> doc = prepare_pdf(pdf, model="OpenGVLab/InternVL2-26B", pages=[1, 3])
        >>> doc.page_numbers, doc.page_count, (doc.pages[0].width, doc.pages[0].height)
        ((1, 3), 3, (896, 1344))
    """
    wanted = _Wanted(normalize_pages(pages), _check_options(options), image_count is None, True)
    found = open_source(source, max_file_bytes=max_file_bytes)
    opts = _options(found.label, model, detail, image_count or 1, max_image_pixels, cache)
    fetch = _Fetch(fetch_urls, fetch_timeout, max_fetch_bytes, url_check, allow_private_urls)
    result = _prepare(found, opts, wanted, fetch)
    assert isinstance(result, PreparedPdf)  # only_pdf: anything else raised
    return result


def prepare_pages(
    source: ImageSource,
    *,
    model: ModelSpec,
    detail: Detail,
    image_count: int,
    pages: Iterable[int] | None = None,
    options: PdfOptions = DEFAULT_PDF_OPTIONS,
    only_pdf: bool = False,
    count_pages: bool = True,
    fetch_urls: bool = False,
    cache: ImageCache | None = DEFAULT_CACHE,
    allow_private_urls: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> tuple[PreparedImage, ...]:
    """The images ``source`` stands for: its pages if it is a PDF (told by its bytes),
    else the one image :func:`~siliconvision.images.prepare_image` makes of it.

    ``image_count`` counts the whole request, this source as one image when
    ``count_pages`` (a PDF then adds its other pages); ``only_pdf`` refuses anything
    but a PDF (an explicit document, or ``pages`` given)."""
    wanted = _Wanted(
        normalize_pages(pages), _check_options(options), count_pages, only_pdf or pages is not None
    )
    found = open_source(source, max_file_bytes=max_file_bytes)
    opts = _options(found.label, model, detail, image_count, DEFAULT_MAX_IMAGE_PIXELS, cache)
    fetch = _Fetch(fetch_urls, 30.0, DEFAULT_MAX_FILE_BYTES, None, allow_private_urls)
    result = _prepare(found, opts, wanted, fetch)
    return result.pages if isinstance(result, PreparedPdf) else (result,)


def _check_options(options: object) -> PdfOptions:
    if not isinstance(options, PdfOptions):
        raise TypeError(f"PDF options must be a PdfOptions, got {type(options).__name__}")
    return options


def _prepare(
    found: RemoteImage | Pixels | EncodedSource | PdfBytes,
    opts: Options,
    wanted: _Wanted,
    fetch: _Fetch,
) -> PreparedImage | PreparedPdf:
    label = found.label
    if isinstance(found, RemoteImage):
        found.check()
        if not fetch.enabled:
            if wanted.only_pdf:
                raise pdf_error(
                    label,
                    "a PDF given by URL is rendered here (SiliconCloud's models take "
                    "images, not PDFs): pass fetch_urls=True to download it through the "
                    "SSRF guard, or give its bytes or a local file",
                )
            return _url_as_is(found, opts)
        data = fetch_url(
            found.url,
            label=label,
            allow_private=fetch.allow_private,
            url_check=fetch.url_check,
            timeout=fetch.timeout,
            max_bytes=fetch.max_bytes,
        )
        if is_pdf(data):
            return _rendered(
                opts, wanted, ("pdf-bytes", _digest(data)), label, PdfBytes(data, label)
            )
        _refuse_image(wanted, label)
        return _prepare_read_bytes(EncodedBytes(data), label, opts)
    if isinstance(found, Pixels):
        _refuse_image(wanted, label)
        return prepare_pixels(found.image, label, opts)
    if isinstance(found, PdfBytes):
        return _rendered(opts, wanted, ("pdf-bytes", _digest(found.data)), label, found)
    if isinstance(found, LocalFile):
        identity = ("pdf-file", *found.identity())
        hit = _cached_pdf(opts, wanted, identity, label)
        if hit is not None:
            return hit
    elif isinstance(found, Base64Text) and opts.cache is not None:
        prefix, text = found.uri_text()
        if prefix.isascii() and text.isascii() and starts_as_pdf(found):
            identity = ("pdf-text", opts.cache._text_digest(prefix, text))
            return _rendered(opts, wanted, identity, label, lambda: _read_pdf(found, wanted))
    head = starts_as_pdf(found)
    if head is None:  # a stream: read it to tell
        read = read_source(found)
        if isinstance(read, PdfBytes):
            return _rendered(opts, wanted, ("pdf-bytes", _digest(read.data)), label, read)
        _refuse_image(wanted, label)
        return _prepare_read_bytes(read, label, opts)
    if head:
        if isinstance(found, LocalFile):
            identity = ("pdf-file", *found.identity())
            return _rendered(opts, wanted, identity, label, lambda: _read_pdf(found, wanted))
        read = read_source(found)
        if isinstance(read, PdfBytes):
            return _rendered(opts, wanted, ("pdf-bytes", _digest(read.data)), label, read)
    _refuse_image(wanted, label)
    return _prepare_encoded(found, label, opts)


def _read_pdf(found: EncodedSource, wanted: _Wanted) -> PdfBytes:
    read = read_source(found)
    if not isinstance(read, PdfBytes):  # it changed since its first bytes were read
        raise pdf_error(found.label, "not a PDF (its bytes do not start with %PDF-)")
    return read


def _refuse_image(wanted: _Wanted, label: str) -> None:
    if wanted.only_pdf:
        raise pdf_error(label, "not a PDF (its bytes do not start with %PDF-)")


def _digest(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=20).digest()


def _key(opts: Options, wanted: _Wanted, identity: tuple[Hashable, ...]) -> tuple[Hashable, ...]:
    return (*identity, *wanted.key(), *opts.key())


def _cached_pdf(
    opts: Options, wanted: _Wanted, identity: tuple[Hashable, ...], label: str
) -> PreparedPdf | None:
    if opts.cache is None:
        return None
    hit = opts.cache._lookup(_key(opts, wanted, identity), count_miss=False)
    return relabelled(hit, label) if isinstance(hit, PreparedPdf) else None


def _rendered(
    opts: Options,
    wanted: _Wanted,
    identity: tuple[Hashable, ...],
    label: str,
    pdf: PdfBytes | Callable[[], PdfBytes],
) -> PreparedPdf:
    """The document's pages, from the cache or rendered (and stored)."""

    def render() -> PreparedPdf:
        document = pdf() if callable(pdf) else pdf
        return render_pdf(
            document.data,
            label,
            opts,
            pages=wanted.pages,
            options=wanted.options,
            count_pages=wanted.count_pages,
        )

    return cached(opts.cache, _key(opts, wanted, identity), label, PreparedPdf, render)
