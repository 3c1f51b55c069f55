"""``image_block``: any image source as a standard LangChain image content block."""

from __future__ import annotations

from typing import Any

from siliconvision.catalog import Detail, as_detail, detail_error
from siliconvision.errors import ContentError, ImageInputError
from siliconvision.images import ImageSource, encode_image, is_image_url, prepare_image

__all__ = ["image_block"]


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
    if detail is not None:
        block["extras"] = {"detail": detail}
    return block
