"""Base64 and ``data:`` URIs, read and written here once for the whole package (the
images, content's videos, the token estimate of prepared messages).

Example:
    >>> decode_data_uri("data:image/png;base64,aGk=", "<label>")
    DecodedBase64(data=b'hi', base64='aGk=', canonical=True)
    >>> data_uri(b"hi", "image/png")
    'data:image/png;base64,aGk='
"""

from __future__ import annotations

import binascii
import re
import sys
from dataclasses import dataclass
from typing import Final

from .errors import ImageInputError

__all__ = [
    "DecodedBase64",
    "base64_header",
    "base64_text",
    "data_uri",
    "decode_base64",
    "decode_data_uri",
    "is_data_uri",
    "looks_like_base64",
]

_DATA_URI_HEADER: Final = re.compile(
    r"data:(image/[a-z0-9][a-z0-9!#$&^_.+-]*|application/pdf)((?:;[a-z0-9!#$&^_.+-]+=[^;,]*)*);base64",
    re.IGNORECASE,
)
_B64_BODY: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_WHITESPACE: Final = re.compile(r"\s+")


def is_data_uri(value: object) -> bool:
    """True for a ``data:`` URI (well-formedness is checked when it is prepared).

    >>> is_data_uri("data:image/png;base64,iVBORw0KGgo="), is_data_uri("a.png")
    (True, False)
    """
    return isinstance(value, str) and value[:5].lower() == "data:"


def looks_like_base64(text: str) -> bool:
    """Whether the start of ``text`` reads as a base64 body (to hint at a mistake)."""
    return _B64_BODY.fullmatch(text[:200].rstrip("=")) is not None


@dataclass(frozen=True)
class DecodedBase64:
    """Bytes decoded from base64 text, and that text when it can stand for them as it is."""

    data: bytes
    base64: str | None
    """The base64 text, when it was clean (no whitespace or stray characters)."""
    canonical: bool = False
    """For a data URI: clean, and its header exactly ``data:image/<lower-case type>;base64``
    (the whole URI can be sent as it is when that type is the real one)."""


def decode_base64(payload: str, label: str, what: str) -> DecodedBase64:
    """The bytes of a base64 ``payload``; whitespace is tolerated, anything else raises
    :class:`~siliconvision.errors.ImageInputError` (``what`` names the container)."""
    if sys.version_info >= (3, 11):
        # Strict decoding validates while it decodes (no separate regex pass over
        # megabytes); anything it refuses takes the lenient path below.
        try:
            return DecodedBase64(binascii.a2b_base64(payload, strict_mode=True), payload)
        except ValueError:  # binascii.Error, or a character that is not ASCII
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
    return DecodedBase64(data, payload if clean else None)


def decode_data_uri(uri: str, label: str) -> DecodedBase64:
    """The bytes of a ``data:image/<type>[;param=value...];base64,<payload>`` URI (or of a
    ``data:application/pdf;base64,...`` one: a PDF's pages are sent as images)."""
    comma = uri.find(",")
    header = _DATA_URI_HEADER.fullmatch(uri, 0, comma) if comma > 0 else None
    if header is None:
        raise ImageInputError(
            label,
            "malformed data URI: expected data:image/<type>;base64,<payload> "
            "(or data:application/pdf;base64,<payload>)",
        )
    decoded = decode_base64(uri[comma + 1 :], label, "malformed data URI")
    canonical = (
        decoded.base64 is not None
        and not header.group(2)
        and uri.startswith("data:image/")
        and header.group(1) == header.group(1).lower()
    )
    return DecodedBase64(decoded.data, decoded.base64, canonical)


def base64_header(mime_type: str, label: str) -> str:
    """``data:<mime_type>;base64``, the header of the data URI base64 data of that type
    stands for; raises unless ``mime_type`` is ``image/<type>`` or ``application/pdf``."""
    header = f"data:{mime_type};base64"
    if _DATA_URI_HEADER.fullmatch(header) is None:
        raise ImageInputError(
            label, f"mime_type {mime_type!r} is not image/<type> (or application/pdf)"
        )
    return header


def base64_text(data: bytes | bytearray | memoryview) -> str:
    """``data`` as base64 (no line breaks)."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def data_uri(data: bytes | bytearray | memoryview | str, mime_type: str) -> str:
    """The ``data:`` URI of ``data`` (bytes, or their base64 text)."""
    return f"data:{mime_type};base64,{data if isinstance(data, str) else base64_text(data)}"
