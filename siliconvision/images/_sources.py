"""Image sources: the one union of what can be prepared, and the one dispatch over it.

:data:`ImageSource` is every form an image may be given in; :func:`open_source` tells
them apart, once for the whole package, and names each as one of a few kinds
(:data:`Source`), without reading anything yet:

- :class:`RemoteImage`: an http(s) URL (sent as it is, or fetched when asked);
- :class:`Pixels`: a caller's ``PIL.Image`` (no bytes of its own);
- an :class:`EncodedSource`, whose encoded bytes are read when needed:
  :class:`LocalFile` (under the core file policy), :class:`DataURI` and
  :class:`Base64Data` (base64 text, decoded when needed: :class:`Base64Text`),
  :class:`Buffer` (bytes in memory) and :class:`Stream` (a binary file object);
- :class:`PdfBytes`: a PDF document (told by its ``%PDF-`` header, like every format by
  its bytes), whose pages are sent as images. Bytes in memory are told apart at once;
  a file, a stream or base64 text once it is read (:func:`read_source`).

Adding a source: a new form of input is one more member of :data:`ImageSource` and one
more branch of :func:`open_source`, whose ``assert_never`` makes the type checker ask
for it. A new kind that is not one image's encoded bytes (a PDF's pages, told by their
``%PDF-`` header, say) is one more member of :data:`Source`, and the ``assert_never``
of :func:`~siliconvision.images.prepare_image` and
:func:`~siliconvision.images.encode_image` ask for its handling; more encoded bytes are
one more :class:`EncodedSource`.

Example:
    >>> open_source("https://example.com/cat.png")
    RemoteImage(url='https://example.com/cat.png')
    >>> open_source(bytearray(b"...")).label
    '<bytearray of 3 bytes>'
    >>> is_image_source(memoryview(b"...")), is_image_source(3.5)
    (True, False)
"""

from __future__ import annotations

import binascii
import io
import os
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from functools import cached_property
from typing import BinaryIO, Final, TypeAlias, get_args, get_origin

from PIL import Image as PILImage
from typing_extensions import TypeIs, assert_never

from .._datauri import (
    base64_header,
    decode_base64,
    decode_data_uri,
    is_data_uri,
    looks_like_base64,
)
from ..errors import ImageInputError
from ..guards import DEFAULT_MAX_FILE_BYTES, LocalFileError, check_local_file, read_checked_file

__all__ = [
    "PDF_MIME_TYPE",
    "Base64Data",
    "Base64Image",
    "Base64Text",
    "Buffer",
    "DataURI",
    "EncodedBytes",
    "EncodedSource",
    "ImageSource",
    "LocalFile",
    "PdfBytes",
    "Pixels",
    "RemoteImage",
    "Source",
    "Stream",
    "is_image_source",
    "is_image_url",
    "is_pdf",
    "nbytes",
    "open_source",
    "read_source",
    "starts_as_pdf",
]

_LABEL_MAX: Final = 120


@dataclass(frozen=True)
class Base64Image:
    """Base64 image data with its declared MIME type, as framework image blocks hold it
    (``{"base64": ..., "mime_type": ...}``): an image source prepared exactly as the
    ``data:`` URI it stands for (the same validation and cache entries), without
    building that URI unless the image is sent as it is. The real format is always
    sniffed from the bytes; ``mime_type=None`` (a block that declares none) declares
    nothing to check. ``mime_type="application/pdf"`` declares a PDF (a file block's),
    whose pages are sent as images.

    >>> Base64Image("iVBORw0KGgo=", "image/png")
    Base64Image(data=<12 base64 chars>, mime_type='image/png')
    >>> Base64Image("iVBORw0KGgo=")
    Base64Image(data=<12 base64 chars>, mime_type=None)
    """

    data: str
    mime_type: str | None = None

    def __repr__(self) -> str:
        return f"Base64Image(data=<{len(self.data):,} base64 chars>, mime_type={self.mime_type!r})"


ImageSource: TypeAlias = (
    str
    | os.PathLike[str]
    | bytes
    | bytearray
    | memoryview
    | BinaryIO
    | PILImage.Image
    | Base64Image
)
"""Every form an image may be given in: a local path (``str`` or ``os.PathLike``), an
http(s) URL or a ``data:`` URI (``str``), encoded bytes (``bytes``, ``bytearray``,
``memoryview``), a binary file object, a ``PIL.Image.Image`` or a :class:`Base64Image`."""

# The classes of ImageSource, read from it (file objects are told by their read()).
_SOURCE_CLASSES: Final = tuple(
    get_origin(member) or member for member in get_args(ImageSource) if member is not BinaryIO
)


def _is_binary_stream(value: object) -> TypeIs[BinaryIO]:
    """A file object (anything with ``read()``; text mode is refused when it is read)."""
    return callable(getattr(value, "read", None))


def is_image_source(value: object) -> TypeIs[ImageSource]:
    """Whether :func:`~siliconvision.images.prepare_image` takes ``value`` as one image
    (any ``str`` is one: a path, URL or data URI; whether it is usable is found when it
    is prepared).

    >>> is_image_source(b"..."), is_image_source(["a.png"])
    (True, False)
    """
    return isinstance(value, _SOURCE_CLASSES) or _is_binary_stream(value)


def is_image_url(value: object) -> bool:
    """True for an ``http://`` or ``https://`` URL (scheme case-insensitive).

    >>> is_image_url("https://example.com/a.png"), is_image_url("/tmp/a.png")
    (True, False)
    """
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


def nbytes(data: bytes | bytearray | memoryview) -> int:
    """The size of ``data`` in bytes (a ``memoryview``'s ``len`` counts items)."""
    return data.nbytes if isinstance(data, memoryview) else len(data)


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class EncodedBytes:
    """An image's encoded bytes, with the base64 text they were decoded from when that
    text can be sent as it is (saves encoding them again)."""

    data: bytes | bytearray | memoryview
    base64: str | None = None
    """Clean base64 of exactly ``data``."""
    data_uri: str | None = None
    """The source's own data URI (canonical header, clean payload), sent whole when the
    type it declares is the real one."""


@dataclass(frozen=True)
class RemoteImage:
    """An http(s) URL: the server fetches it, unless the caller fetches it first."""

    url: str

    @property
    def label(self) -> str:
        return _redact_url(self.url)

    def check(self) -> None:
        """Refuse a malformed URL (no host, a bad port, whitespace or control characters)."""
        try:
            parts = urllib.parse.urlsplit(self.url)
            host = parts.hostname
            _ = parts.port
        except ValueError as exc:
            raise ImageInputError(self.label, f"malformed URL: {exc}") from None
        if not host:
            raise ImageInputError(self.label, "malformed URL: no host")
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in self.url):
            raise ImageInputError(
                self.label, "malformed URL: contains whitespace or control characters"
            )


@dataclass(frozen=True)
class Pixels:
    """A caller's decoded ``PIL.Image`` (never modified; its current frame is sent)."""

    image: PILImage.Image

    @property
    def label(self) -> str:
        return f"<PIL.Image {self.image.mode} {self.image.width}x{self.image.height}>"


class EncodedSource(ABC):
    """A source of encoded image bytes, read (or decoded) only when needed."""

    @property
    @abstractmethod
    def label(self) -> str:
        """A short name for the source, safe to show (no URL secrets, no payloads)."""

    @abstractmethod
    def read(self) -> EncodedBytes:
        """The encoded bytes; raises :class:`~siliconvision.errors.ImageInputError`."""


@dataclass(frozen=True)
class LocalFile(EncodedSource):
    """A local file, read under the core file policy
    (:func:`siliconvision.guards.check_local_file`): a regular file of at most
    ``max_bytes``, checked with ``stat`` before it is opened."""

    path: str | bytes
    max_bytes: int = DEFAULT_MAX_FILE_BYTES

    @property
    def label(self) -> str:
        return _shorten(os.fsdecode(self.path))

    @cached_property
    def checked(self) -> tuple[str, os.stat_result]:
        """The resolved path and its ``stat``, checked by the file policy."""
        label = self.label
        try:
            real = os.path.realpath(os.fsdecode(self.path))
            st = os.stat(real)
        except FileNotFoundError:
            raise ImageInputError(label, _missing_reason(self.path)) from None
        except PermissionError:
            raise ImageInputError(label, "unreadable (permission denied)") from None
        except (OSError, ValueError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else "invalid path"
            raise ImageInputError(label, _missing_reason(self.path, detail)) from None
        try:
            check_local_file(real, st, max_bytes=self.max_bytes)
        except LocalFileError as exc:
            raise ImageInputError(label, exc.reason) from None
        return real, st

    def identity(self) -> tuple[Hashable, ...]:
        """The file's identity (device, inode, size, mtime, ctime), checked first."""
        st = self.checked[1]
        return ("path", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def read(self) -> EncodedBytes:
        real, st = self.checked
        try:
            return EncodedBytes(read_checked_file(real, st))
        except LocalFileError as exc:
            raise ImageInputError(self.label, exc.reason) from None

    def head(self, size: int) -> bytes:
        """The file's first ``size`` bytes (under the same policy), to tell its format."""
        real, st = self.checked
        try:
            return read_checked_file(real, st, head=size)
        except LocalFileError as exc:
            raise ImageInputError(self.label, exc.reason) from None


class Base64Text(EncodedSource):
    """Base64 text, prepared as the ``data:`` URI it is or stands for."""

    @abstractmethod
    def uri_text(self) -> tuple[str, str]:
        """(prefix, text) that make the data URI: its identity, hashed without decoding."""


@dataclass(frozen=True)
class DataURI(Base64Text):
    """A ``data:image/<type>;base64,...`` URI."""

    uri: str

    @property
    def label(self) -> str:
        semicolon = self.uri.find(";")
        mime = self.uri[5:semicolon] if 0 < semicolon < 64 else "?"
        return f"<data URI {mime}, {len(self.uri):,} chars>"

    def uri_text(self) -> tuple[str, str]:
        return "", self.uri

    def read(self) -> EncodedBytes:
        decoded = decode_data_uri(self.uri, self.label)
        return EncodedBytes(decoded.data, decoded.base64, self.uri if decoded.canonical else None)


@dataclass(frozen=True)
class Base64Data(Base64Text):
    """A :class:`Base64Image`, as the data URI it stands for (built only if sent)."""

    image: Base64Image

    @property
    def label(self) -> str:
        mime = "?" if self.image.mime_type is None else _shorten(self.image.mime_type, 40)
        return f"<base64 {mime}, {len(self.image.data):,} chars>"

    def uri_text(self) -> tuple[str, str]:
        mime = self.image.mime_type
        if mime is None:  # no type declared: a prefix no data URI of an image has
            return "data:;base64,", self.image.data
        return base64_header(mime, self.label) + ",", self.image.data

    def read(self) -> EncodedBytes:
        self.uri_text()  # its MIME type must be image/<type>
        decoded = decode_base64(self.image.data, self.label, "malformed base64 image")
        return EncodedBytes(decoded.data, decoded.base64)


@dataclass(frozen=True)
class Buffer(EncodedSource):
    """Encoded bytes in memory: ``bytes``, ``bytearray`` or ``memoryview``."""

    data: bytes | bytearray | memoryview

    @property
    def label(self) -> str:
        return f"<{type(self.data).__name__} of {nbytes(self.data):,} bytes>"

    def read(self) -> EncodedBytes:
        data = self.data
        return EncodedBytes(_flat(data) if isinstance(data, memoryview) else data)


@dataclass(frozen=True)
class Stream(EncodedSource):
    """A binary file object, read whole (once) when needed."""

    stream: BinaryIO

    @property
    def label(self) -> str:
        name = getattr(self.stream, "name", None)
        return _shorten(name) if isinstance(name, str) and name else _type_label(self.stream)

    def read(self) -> EncodedBytes:
        label = self.label
        if isinstance(self.stream, io.TextIOBase):
            raise ImageInputError(label, "file object is in text mode; open it with 'rb'")
        try:
            data = self.stream.read()
        except (OSError, ValueError) as exc:
            raise ImageInputError(label, f"unreadable: {str(exc) or type(exc).__name__}") from None
        if isinstance(data, str):
            raise ImageInputError(label, "file object is in text mode; open it with 'rb'")
        if isinstance(data, memoryview):
            return EncodedBytes(_flat(data))
        if not isinstance(data, (bytes, bytearray)):
            raise ImageInputError(
                label, f"file object's read() returned {type(data).__name__}, not bytes"
            )
        return EncodedBytes(data)


PDF_MIME_TYPE: Final = "application/pdf"


def is_pdf(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is a PDF document (it starts with ``%PDF-``).

    >>> is_pdf(b"%PDF-1.7 ..."), is_pdf(b"GIF89a")
    (True, False)
    """
    return bytes(data[:5]) == b"%PDF-"


@dataclass(frozen=True)
class PdfBytes:
    """A PDF document's bytes, read: its pages are rendered and sent as images."""

    data: bytes | bytearray | memoryview
    label: str


Source: TypeAlias = RemoteImage | Pixels | EncodedSource | PdfBytes
"""What :func:`open_source` tells a source apart as."""


def starts_as_pdf(source: EncodedSource) -> bool | None:
    """Whether ``source`` holds a PDF, told from its first bytes without reading the
    rest: a file's first five bytes, base64 text's first eight characters; ``None`` for
    a stream (it must be read to tell)."""
    if isinstance(source, LocalFile):
        return is_pdf(source.head(5))
    if isinstance(source, Base64Text):
        prefix, text = source.uri_text()
        payload = text.partition(",")[2] if not prefix else text
        try:
            start = "".join(payload[:64].split())[:8]  # (line breaks are tolerated)
            return is_pdf(binascii.a2b_base64(start.encode("ascii", "replace")))
        except (binascii.Error, ValueError):
            return False  # not clean base64 there: reading it will say why
    if isinstance(source, Buffer):
        return is_pdf(source.data)
    return None


def read_source(source: EncodedSource) -> EncodedBytes | PdfBytes:
    """``source`` read, and told apart by its bytes: a PDF, or one image's bytes."""
    read = source.read()
    return PdfBytes(read.data, source.label) if is_pdf(read.data) else read


# --------------------------------------------------------------------------- dispatch


def open_source(value: object, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Source:
    """The kind of image source ``value`` is (nothing is read, stat-ed or decoded yet).

    Raises :class:`~siliconvision.errors.ImageInputError` for anything that is not an
    :data:`ImageSource`. ``max_file_bytes`` bounds a local file.
    """
    if not is_image_source(value):
        raise ImageInputError(
            _type_label(value),
            f"unsupported image source type {type(value).__name__}; expected a path, URL, "
            "data URI, bytes, binary file object, PIL.Image or Base64Image",
        )
    if isinstance(value, str):
        if is_image_url(value):
            return RemoteImage(value)
        if is_data_uri(value):
            return DataURI(value)
        return LocalFile(value, max_file_bytes)
    elif isinstance(value, os.PathLike):
        return LocalFile(os.fspath(value), max_file_bytes)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        buffer = Buffer(value)
        return PdfBytes(buffer.read().data, buffer.label) if is_pdf(value) else buffer
    elif isinstance(value, PILImage.Image):
        return Pixels(value)
    elif isinstance(value, Base64Image):
        return Base64Data(value)
    elif _is_binary_stream(value):
        return Stream(value)
    else:
        assert_never(value)


# --------------------------------------------------------------------------- helpers


def _type_label(value: object) -> str:
    return f"<{type(value).__name__}>"


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


def _missing_reason(path: str | bytes, detail: str = "") -> str:
    text = os.fsdecode(path)
    reason = "file does not exist" + (f" ({detail})" if detail else "")
    if "://" in text[:16]:
        return reason + "; only http:// and https:// URLs are taken"
    if len(text) > 200 and looks_like_base64(text):
        return reason + "; raw base64? pass data:image/<type>;base64,<payload> or bytes"
    return reason


def _flat(view: memoryview) -> memoryview:
    """``view`` as contiguous unsigned bytes (copied only when it is not contiguous)."""
    if view.c_contiguous:
        return view.cast("B") if (view.ndim != 1 or view.format != "B") else view
    return memoryview(view.tobytes())
