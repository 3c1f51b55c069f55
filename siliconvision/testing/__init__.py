"""Testing helpers: :class:`LocalSiliconCloud`, a local SiliconCloud on 127.0.0.1, and
:func:`make_pdf`, small PDF documents written from scratch (pages of shapes, text and
JPEG "scans"; optionally encrypted) for offline tests of PDF input.

Example:
    >>> from siliconvision.testing import LocalSiliconCloud
    >>> with LocalSiliconCloud() as emu:  # doctest: +SKIP
    ...     client = openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url)
"""

from ._pdfs import PdfImage, PdfPage, make_pdf, scan_page
from ._records import ReceivedRequest, ScriptedReply, SeenImage
from .emulator import (
    DEFAULT_ERROR_BODIES,
    LocalSiliconCloud,
    RateWindowStats,
    default_error_body,
    rate_limit_body,
)

__all__ = [
    "DEFAULT_ERROR_BODIES",
    "LocalSiliconCloud",
    "PdfImage",
    "PdfPage",
    "RateWindowStats",
    "ReceivedRequest",
    "ScriptedReply",
    "SeenImage",
    "default_error_body",
    "make_pdf",
    "rate_limit_body",
    "scan_page",
]
