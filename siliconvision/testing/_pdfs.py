"""Small PDF documents written from scratch (no PDF library): what the tests and the
benchmarks send as PDFs, offline.

:func:`make_pdf` writes pages of filled rectangles, Helvetica text and embedded JPEG
images (a "scan" is one page-sized JPEG), optionally rotated, optionally encrypted
with the standard security handler (RC4, revision 3: a user password that opening
needs, or an owner password only).

Example:
    >>> pdf = make_pdf([PdfPage(rects=[((0, 0, 100, 100), (255, 0, 0))])])
    >>> pdf[:8], pdf.rstrip().endswith(b"%%EOF")
    (b'%PDF-1.7', True)
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

__all__ = ["PdfImage", "PdfPage", "make_pdf", "scan_page"]

_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
_FILE_ID = hashlib.md5(b"siliconvision test pdf").digest()

Rect = tuple[float, float, float, float]  # x, y, width, height in points (origin bottom left)
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class PdfImage:
    """An image XObject drawn at ``rect``: JPEG bytes (``/DCTDecode``), or a declared
    ``size`` with (almost) no data (the shape of a decompression bomb)."""

    rect: Rect
    jpeg: bytes | None = None
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class PdfPage:
    """One page: ``size`` in points (595 x 842 is A4), its ``/Rotate``, and what is
    drawn on it, in this order: rectangles, images, text lines."""

    size: tuple[float, float] = (595.0, 842.0)
    rotate: int = 0
    rects: Sequence[tuple[Rect, RGB]] = ()
    images: Sequence[PdfImage] = ()
    text: Sequence[tuple[float, float, float, str]] = field(default_factory=tuple)
    """(x, y, font size, text) lines in Helvetica."""


def scan_page(
    photo: Image.Image, *, size: tuple[float, float] = (595.0, 842.0), quality: int = 85
) -> PdfPage:
    """A page that is one JPEG covering it, as a scanner writes it."""
    buffer = io.BytesIO()
    photo.convert("RGB").save(buffer, "JPEG", quality=quality)
    return PdfPage(size=size, images=[PdfImage((0, 0, *size), jpeg=buffer.getvalue())])


def _rc4(key: bytes, data: bytes) -> bytes:
    box = list(range(256))
    j = 0
    for i in range(256):
        j = (j + box[i] + key[i % len(key)]) % 256
        box[i], box[j] = box[j], box[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + box[i]) % 256
        box[i], box[j] = box[j], box[i]
        out.append(byte ^ box[(box[i] + box[j]) % 256])
    return bytes(out)


def _padded(password: str) -> bytes:
    return (password.encode("latin-1") + _PAD)[:32]


@dataclass(frozen=True)
class _Security:
    """The standard security handler, revision 3 (RC4, 128-bit key)."""

    user_password: str
    owner_password: str
    permissions: int = -4  # every permission

    def owner_entry(self) -> bytes:
        digest = hashlib.md5(_padded(self.owner_password or self.user_password)).digest()
        for _ in range(50):
            digest = hashlib.md5(digest).digest()
        value = _rc4(digest, _padded(self.user_password))
        for i in range(1, 20):
            value = _rc4(bytes(b ^ i for b in digest), value)
        return value

    def key(self) -> bytes:
        md5 = hashlib.md5(_padded(self.user_password) + self.owner_entry())
        md5.update(self.permissions.to_bytes(4, "little", signed=True) + _FILE_ID)
        digest = md5.digest()
        for _ in range(50):
            digest = hashlib.md5(digest).digest()
        return digest

    def user_entry(self) -> bytes:
        value = _rc4(self.key(), hashlib.md5(_PAD + _FILE_ID).digest())
        for i in range(1, 20):
            value = _rc4(bytes(b ^ i for b in self.key()), value)
        return value + bytes(16)

    def encrypt(self, number: int, data: bytes) -> bytes:
        object_key = hashlib.md5(self.key() + number.to_bytes(3, "little") + bytes(2)).digest()
        return _rc4(object_key, data)


def _hex(data: bytes) -> bytes:
    return b"<" + data.hex().encode("ascii") + b">"


def _text_literal(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1") + b")"


def make_pdf(
    pages: Sequence[PdfPage],
    *,
    user_password: str | None = None,
    owner_password: str | None = None,
) -> bytes:
    """A PDF of ``pages``. With ``user_password`` (non-empty), opening it needs that
    password; with only ``owner_password`` it is encrypted but opens without one (a
    permissions-only PDF). Streams are Flate-compressed (JPEGs stay DCT)."""
    security = None
    if user_password is not None or owner_password is not None:
        security = _Security(user_password or "", owner_password or "")
    objects: list[bytes | None] = [None, None, None]  # 1 catalog, 2 pages, 3 font

    def add(body: bytes | None = None) -> int:
        objects.append(body)
        return len(objects)

    def stream(number: int, entries: bytes, data: bytes) -> bytes:
        if security is not None:
            data = security.encrypt(number, data)
        return b"<< " + entries + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"

    kids: list[int] = []
    for page in pages:
        resources: list[bytes] = []
        content = io.BytesIO()
        for (x, y, w, h), (r, g, b) in page.rects:
            content.write(b"%.4f %.4f %.4f rg " % (r / 255, g / 255, b / 255))
            content.write(b"%.3f %.3f %.3f %.3f re f\n" % (x, y, w, h))
        for index, image in enumerate(page.images):
            number = add()
            if image.jpeg is not None:
                with Image.open(io.BytesIO(image.jpeg)) as opened:
                    (width, height), mode = opened.size, opened.mode
                space = b"/DeviceGray" if mode == "L" else b"/DeviceRGB"
                entries = b"/Type /XObject /Subtype /Image /Width %d /Height %d " % (width, height)
                entries += b"/ColorSpace " + space + b" /BitsPerComponent 8 /Filter /DCTDecode"
                objects[number - 1] = stream(number, entries, image.jpeg)
            else:
                width, height = image.size or (1, 1)
                entries = b"/Type /XObject /Subtype /Image /Width %d /Height %d " % (width, height)
                entries += b"/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode"
                objects[number - 1] = stream(number, entries, zlib.compress(bytes(1024)))
            resources.append(b"/Im%d %d 0 R" % (index, number))
            x, y, w, h = image.rect
            content.write(b"q %.3f 0 0 %.3f %.3f %.3f cm /Im%d Do Q\n" % (w, h, x, y, index))
        for x, y, size, text in page.text:
            content.write(b"BT /F1 %.2f Tf %.3f %.3f Td " % (size, x, y))
            content.write(_text_literal(text) + b" Tj ET\n")
        content_number = add()
        objects[content_number - 1] = stream(
            content_number, b"/Filter /FlateDecode", zlib.compress(content.getvalue())
        )
        xobjects = b"/XObject << " + b" ".join(resources) + b" >> " if resources else b""
        body = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.3f %.3f] " % page.size
        if page.rotate:
            body += b"/Rotate %d " % page.rotate
        body += b"/Resources << /Font << /F1 3 0 R >> " + xobjects + b">> "
        body += b"/Contents %d 0 R >>" % content_number
        kids.append(add(body))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    refs = b" ".join(b"%d 0 R" % kid for kid in kids)
    objects[1] = b"<< /Type /Pages /Kids [" + refs + b"] /Count %d >>" % len(kids)
    objects[2] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    encrypt_number = None
    if security is not None:
        encrypt_number = add(
            b"<< /Filter /Standard /V 2 /R 3 /Length 128 /P %d /O %s /U %s >>"
            % (security.permissions, _hex(security.owner_entry()), _hex(security.user_entry()))
        )
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, entry in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + (entry or b"null") + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    trailer = b"<< /Size %d /Root 1 0 R /ID [%s %s]" % (
        len(objects) + 1,
        _hex(_FILE_ID),
        _hex(_FILE_ID),
    )
    if encrypt_number is not None:
        trailer += b" /Encrypt %d 0 R" % encrypt_number
    out.write(b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()
