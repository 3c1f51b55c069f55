"""``image_block``: any image source as a standard LangChain image content block;
``pdf_block``: a PDF as a standard file content block."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from siliconvision._datauri import base64_text
from siliconvision.catalog import Detail, as_detail, detail_error
from siliconvision.errors import ContentError, ImageInputError
from siliconvision.guards import DEFAULT_MAX_FILE_BYTES
from siliconvision.images import (
    PDF_MIME_TYPE,
    ImageSource,
    encode_image,
    is_image_url,
    prepare_image,
)
from siliconvision.images._pdf import normalize_pages, pdf_error
from siliconvision.images._pipeline import NOT_ONE_IMAGE
from siliconvision.images._sources import EncodedSource, PdfBytes, open_source, read_source

__all__ = ["image_block", "pdf_block"]


def image_block(
    source: ImageSource,
    *,
    detail: Detail | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """A standard v1 image block (``{"type": "image", ...}``, a LangChain
    ``ImageContentBlock``) for any image source.

    ``source``: a local path (``str`` or ``Path``), ``bytes``, a binary file object, a
    ``PIL.Image``, a ``data:`` URI or an http(s) URL. URLs stay URLs
    (``{"type": "image", "url": ...}``); everything else is read, validated and
    base64-encoded (``{"type": "image", "base64": ..., "mime_type": ...}``). A bad
    image raises :class:`~siliconvision.errors.ImageInputError` here, before any
    request: not an image (the real format is sniffed from the bytes), a corrupt
    header, a decompression bomb, a file cut short.

    ``detail`` (``"low"``/``"high"``/``"auto"``) is kept in ``extras["detail"]`` and
    wins over the model's ``detail`` when the message is sent. The block holds the
    image's own bytes (:func:`siliconvision.images.encode_image`: checked from its
    header and structure, not decoded, so a 12 MP photo costs a few milliseconds
    here); :class:`~langchain_siliconvision.ChatSiliconVision` decodes and downsizes
    it once, when sending, to what the target model keeps (and caches the result).
    Formats servers do not take (TIFF, BMP, ...) and ``PIL.Image`` sources are
    converted to PNG/JPEG here. Pass ``model`` to downsize now instead (smaller
    messages in memory and traces).

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_siliconvision import image_block
        >>> message = HumanMessage(content=[
        ...     image_block("chart.png", detail="high"),
        ...     image_block("https://example.com/photo.jpg", detail="low"),
        ...     {"type": "text", "text": "Does the chart match the photo?"},
        ... ])  # doctest: +SKIP
    """
    if detail is not None and as_detail(detail) is None:
        # ContentError (a ValueError): the package's documented input error, like the rest
        raise ContentError(detail_error(detail))
    block: dict[str, Any]
    try:
        if isinstance(source, str) and is_image_url(source):
            prepared = prepare_image(source, model=model, detail=detail, cache=None)
            block = {"type": "image", "url": prepared.url}
        elif model is None:
            encoded = encode_image(source)
            block = {"type": "image", "base64": encoded.data, "mime_type": encoded.mime_type}
        else:
            prepared = prepare_image(source, model=model, detail=detail)
            if prepared.base64 is None or prepared.mime_type is None:  # not a URL: cannot be
                raise ImageInputError(prepared.source_label, "could not be encoded as base64")
            block = {"type": "image", "base64": prepared.base64, "mime_type": prepared.mime_type}
    except ImageInputError as exc:
        if exc.reason.startswith(NOT_ONE_IMAGE):
            raise ImageInputError(
                exc.source, f"{NOT_ONE_IMAGE}: use pdf_block(...), which sends its pages"
            ) from None
        raise
    if detail is not None:
        block["extras"] = {"detail": detail}
    return block


def pdf_block(
    source: ImageSource,
    *,
    pages: Iterable[int] | None = None,
    detail: Detail | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> dict[str, Any]:
    """A standard v1 file block (``{"type": "file", "base64": ..., "mime_type":
    "application/pdf"}``, a LangChain ``FileContentBlock``) for a PDF: a local path,
    ``bytes`` or a binary file object, read here under the core file policy (a regular
    file of at most ``max_file_bytes``) and told a PDF by its bytes.

    ``pages`` (page numbers, 1 for the first; default every page) and ``detail`` are
    kept in ``extras``; :class:`~langchain_siliconvision.ChatSiliconVision` sends each
    selected page as one image, rendered (once) at the size the target model's server
    keeps. The document itself is opened when it is sent: a damaged or encrypted PDF
    raises :class:`~siliconvision.errors.ImageInputError` then, before any request.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> message = HumanMessage(content=[
        ...     pdf_block("invoice.pdf", pages=[1], detail="high"),
        ...     {"type": "text", "text": "What is the total?"},
        ... ])  # doctest: +SKIP
    """
    if detail is not None and as_detail(detail) is None:
        raise ContentError(detail_error(detail))
    try:
        selected = normalize_pages(pages)
    except ValueError as exc:
        raise ContentError(str(exc)) from None
    found = open_source(source, max_file_bytes=max_file_bytes)
    read = read_source(found) if isinstance(found, EncodedSource) else found
    if not isinstance(read, PdfBytes):
        raise pdf_error(found.label, "not a PDF (its bytes do not start with %PDF-)")
    block: dict[str, Any] = {
        "type": "file",
        "base64": base64_text(read.data),
        "mime_type": PDF_MIME_TYPE,
    }
    extras: dict[str, Any] = {}
    if selected is not None:
        extras["pages"] = list(selected)
    if detail is not None:
        extras["detail"] = detail
    if extras:
        block["extras"] = extras
    return block
