"""What preparing an image returns: :class:`PreparedImage` and :class:`EncodedImage`; a
PDF's pages: :class:`PreparedPdf`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..catalog import Detail

__all__ = ["EncodedImage", "PreparedImage", "PreparedPdf", "page_label"]


def page_label(label: str, number: int) -> str:
    """How one page of the document ``label`` is named (``"scan.pdf page 3"``)."""
    return f"{label} page {number}"


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send, with what was done to it.

    Example:
        >>> from siliconvision.images import prepare_image
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

        >>> from siliconvision.images import prepare_image
        >>> prepare_image("https://example.com/a.png").to_part()["type"]
        'image_url'
        """
        return {"type": "image_url", "image_url": {"url": self.url, "detail": self.detail}}

    @property
    def is_url(self) -> bool:
        """True when ``url`` is an http(s) URL the server will fetch itself."""
        return self.mime_type is None

    @property
    def base64(self) -> str | None:
        """The base64 payload of the ``data:`` URI ``url`` is (``None`` for an http(s) URL).

        >>> import base64, io
        >>> from PIL import Image as PILImage
        >>> from siliconvision.images import prepare_image
        >>> buf = io.BytesIO(); PILImage.new("L", (1, 1)).save(buf, "PNG")
        >>> base64.b64decode(prepare_image(buf.getvalue(), cache=None).base64) == buf.getvalue()
        True
        >>> prepare_image("https://example.com/a.png").base64 is None
        True
        """
        return None if self.is_url else self.url.partition(",")[2]

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
class EncodedImage:
    """An image's own bytes as base64 (what :func:`~siliconvision.images.encode_image`
    returns): what a standard base64 image block of a framework holds, before any
    downsizing.

    Example:
        >>> import io
        >>> from PIL import Image as PILImage
        >>> from siliconvision.images import encode_image
        >>> buf = io.BytesIO(); PILImage.new("RGB", (8, 8)).save(buf, "PNG")
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


@dataclass(frozen=True)
class PreparedPdf:
    """A PDF's selected pages, each rendered once at the size the target model's server
    keeps and encoded as an image ready to send, in page order.

    Example:
        >>> from siliconvision.images import prepare_pdf
        >>> from siliconvision.testing import make_pdf, PdfPage
        >>> pdf = make_pdf([PdfPage(), PdfPage(rects=[((0, 0, 595, 842), (0, 0, 255))])])
        >>> prepared = prepare_pdf(pdf, model="Qwen/Qwen2.5-VL-72B-Instruct", detail="low")
        >>> prepared.page_numbers, [(p.width, p.height) for p in prepared.pages]
        ((1, 2), [(448, 634), (448, 634)])
        >>> [part["type"] for part in prepared.to_parts()]
        ['image_url', 'image_url']
    """

    pages: tuple[PreparedImage, ...]
    page_numbers: tuple[int, ...]
    """The number of each page in ``pages`` (1 is the first page of the document)."""
    page_count: int
    """How many pages the document has (selected or not)."""
    source_label: str

    def to_parts(self) -> list[dict[str, Any]]:
        """One ``image_url`` part per page, in page order."""
        return [page.to_part() for page in self.pages]

    @property
    def byte_size(self) -> int:
        """The encoded bytes of every page together."""
        return sum(page.byte_size for page in self.pages)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{p.width}x{p.height}" for p in self.pages[:4])
        more = f", ... ({len(self.pages)} pages)" if len(self.pages) > 4 else ""
        return (
            f"PreparedPdf(page_numbers={self.page_numbers!r}, page_count={self.page_count}, "
            f"sizes=[{sizes}{more}], byte_size={self.byte_size}, "
            f"source_label={self.source_label!r})"
        )
