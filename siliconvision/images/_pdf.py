"""PDF documents: each selected page rendered once, directly at the size the target
model's server keeps, and encoded as one image (pypdfium2, the ``[pdf]`` extra).

A page has no pixels of its own: it is read as if scanned at ``PdfOptions.dpi``
(``width_pt / 72 * dpi`` pixels wide), the model's rule gives the size its server keeps
of that (:func:`siliconvision.tokens.page_render_size`: the processor's own size for
Qwen and GLM, the tile grid for InternVL, aspect kept covering every view otherwise,
and ``low`` detail's 448-pixel square), and PDFium draws the page straight into a
bitmap of exactly that size (the scale from points to pixels computed per axis). No
page is drawn big and shrunk, and none twice.

Untrusted documents are bounded before anything is drawn:

- ``max_pages``: the pages one document may send (the default selection is every page;
  a longer document is refused, never cut short: select pages with ``pages=``);
- ``max_pixels``: the pixels of every selected page together, at the sizes they would
  be drawn at; each page is also held to ``max_image_pixels``, and so are the images
  embedded in it (an image object declaring 30000 x 30000 pixels is a bomb whichever
  size the page is drawn at);
- ``timeout``: one deadline for the whole document, checked between pages, while the
  objects of a page are counted, and inside PDFium's drawing of a page (progressive
  rendering, paused between page objects): a slow page stops at the deadline;
- documents that need a password, that PDFium cannot open, or whose pages cannot be
  loaded are refused. A document encrypted with an owner password only (a viewer
  restriction: every reader opens it without a password) is rendered.

Every refusal is an :class:`~siliconvision.errors.ImageInputError` (kind ``"PDF"``)
naming the document and the reason, raised before any request. PDFium is not
thread-safe, so every call into it is made under one lock (pages of concurrent
documents take turns; encoding runs outside the lock).
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image as PILImage

from .._datauri import data_uri
from ..catalog import Detail
from ..errors import ImageInputError
from ..tokens import page_render_size
from ._encode import MIME_TYPES, encode_for_server, save_as
from ._pipeline import Options
from ._results import PreparedImage, PreparedPdf, page_label

__all__ = [
    "DEFAULT_PDF_OPTIONS",
    "PdfOptions",
    "normalize_pages",
    "pdf_error",
    "pdf_page_count",
    "render_pdf",
    "select_pages",
]

_EXTRA: Final = "pip install 'siliconvision[pdf]'"
# pdfium is not thread-safe: no two calls into it at the same time, in any document.
_PDFIUM_LOCK: Final = threading.Lock()
_POINTS_PER_INCH: Final = 72.0
_MAX_FORM_DEPTH: Final = 32
_DEADLINE_EVERY: Final = 1024  # page objects between two looks at the clock
_SCANNED_SHARE: Final = 0.5  # of the page's area covered by images: sent as JPEG


def pdf_error(label: str, reason: str) -> ImageInputError:
    """The error for a PDF that cannot be sent: ``PDF <label>: <reason>``."""
    return ImageInputError(label, reason, kind="PDF")


def _finite(name: str, value: object, *, minimum: float, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"PdfOptions.{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and minimum <= value <= maximum):
        raise ValueError(
            f"PdfOptions.{name} must be between {minimum:g} and {maximum:g}, got {value!r}"
        )
    return float(value)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"PdfOptions.{name} must be an integer >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class PdfOptions:
    """How PDF pages are read, and the caps that bound the work on untrusted documents.

    - ``dpi``: the resolution a page is read at before the model's rule applies (the
      most detail a page gives; the server may keep less: ``low`` detail keeps 448
      pixels on the shorter side, InternVL its tile grid). 200, as document VLM
      pipelines commonly render;
    - ``max_pages``: the most pages one document may send (100, the per-document limit
      of the major hosted PDF APIs);
    - ``max_pixels``: the most pixels all the selected pages of one document may be
      drawn at together (400 million: 100 A4 pages at 200 dpi);
    - ``timeout``: seconds one document may take to render (60).

    >>> PdfOptions(dpi=150).dpi
    150.0
    >>> PdfOptions(max_pages=0)
    Traceback (most recent call last):
    ...
    ValueError: PdfOptions.max_pages must be an integer >= 1, got 0
    """

    dpi: float = 200.0
    max_pages: int = 100
    max_pixels: int = 400_000_000
    timeout: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dpi", _finite("dpi", self.dpi, minimum=1, maximum=2400))
        _count("max_pages", self.max_pages)
        _count("max_pixels", self.max_pixels)
        object.__setattr__(
            self, "timeout", _finite("timeout", self.timeout, minimum=0.001, maximum=86_400)
        )

    def key(self) -> tuple[float]:
        """What, of these options, decides the pages sent (the caps only refuse)."""
        return (self.dpi,)


DEFAULT_PDF_OPTIONS: Final = PdfOptions()


def normalize_pages(pages: Iterable[int] | None) -> tuple[int, ...] | None:
    """``pages`` (page numbers, 1 for the first page) checked and in page order;
    ``None`` (every page) stays ``None``. Raises ``ValueError`` for anything but
    distinct whole numbers >= 1.

    >>> normalize_pages([3, 1]), normalize_pages(range(1, 4)), normalize_pages(None)
    ((1, 3), (1, 2, 3), None)
    >>> normalize_pages([0])
    Traceback (most recent call last):
    ...
    ValueError: pages are page numbers, 1 for the first page; got 0
    """
    if pages is None:
        return None
    if isinstance(pages, (str, bytes)) or not isinstance(pages, Iterable):
        raise ValueError(f"pages must be page numbers (a list or range of ints), got {pages!r}")
    chosen: list[int] = []
    for page in pages:
        if isinstance(page, bool) or not isinstance(page, int):
            raise ValueError(f"pages are page numbers (ints), got {page!r}")
        if page < 1:
            raise ValueError(f"pages are page numbers, 1 for the first page; got {page}")
        chosen.append(page)
    if not chosen:
        raise ValueError("pages selects no page; pass None for every page")
    if len(set(chosen)) != len(chosen):
        twice = sorted({p for p in chosen if chosen.count(p) > 1})
        raise ValueError(f"pages lists page {twice[0]} more than once")
    return tuple(sorted(chosen))


# --------------------------------------------------------------------------- pdfium


def _pdfium(label: str) -> Any:
    """``pypdfium2.raw`` (importing ``pypdfium2`` initialises PDFium), or the error
    that names the extra."""
    try:
        importlib.import_module("pypdfium2")
        return importlib.import_module("pypdfium2.raw")
    except ImportError:
        raise pdf_error(
            label,
            f"rendering PDF pages needs pypdfium2, the [pdf] extra: {_EXTRA}",
        ) from None


_LOAD_ERRORS: Final = {
    1: "an unknown error",
    2: "the file could not be read",
    3: "it is not a valid PDF (damaged or not a PDF)",
    4: "it is encrypted and needs a password",
    5: "its security scheme is not supported",
    6: "a page could not be read",
}


class _Deadline:
    """The document's deadline, and PDFium's pause callback that watches it."""

    def __init__(self, seconds: float, label: str) -> None:
        self.seconds = seconds
        self.label = label
        self.end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() > self.end

    def check(self, where: str) -> None:
        if self.passed():
            raise self.error(where)

    def error(self, where: str) -> ImageInputError:
        return pdf_error(
            self.label,
            f"rendering took longer than timeout={self.seconds:g} s ({where}); "
            "select fewer pages, or raise PdfOptions(timeout=...) for documents you trust",
        )


@dataclass
class _Page:
    number: int  # 1-based
    points: tuple[float, float]
    native: tuple[int, int]  # pixels at the reference resolution
    target: tuple[int, int]  # pixels drawn


class _Document:
    """An open PDFium document (the caller holds :data:`_PDFIUM_LOCK` for every method)."""

    def __init__(self, c: Any, data: bytes, label: str) -> None:
        self.c = c
        self.data = data  # PDFium reads from this buffer while the document is open
        self.label = label
        self.form: Any = None
        self._form_info: Any = None
        self.raw = c.FPDF_LoadMemDocument64(data, len(data), None)
        if not self.raw:
            code = int(c.FPDF_GetLastError())
            raise pdf_error(label, f"refused: {_LOAD_ERRORS.get(code, f'PDFium error {code}')}")

    def page_count(self) -> int:
        return int(self.c.FPDF_GetPageCount(self.raw))

    def page_points(self, number: int) -> tuple[float, float]:
        size = self.c.FS_SIZEF()
        if not self.c.FPDF_GetPageSizeByIndexF(self.raw, number - 1, ctypes.byref(size)):
            raise pdf_error(self.label, f"page {number} cannot be read (damaged)")
        return float(size.width), float(size.height)

    def init_forms(self) -> None:
        """Form fields are drawn as the document's own viewer would (no JavaScript: the
        PDFium of pypdfium2 is built without it)."""
        c = self.c
        if c.FPDF_GetFormType(self.raw) == c.FORMTYPE_NONE:
            return
        self._form_info = c.FPDF_FORMFILLINFO(version=2)
        self.form = c.FPDFDOC_InitFormFillEnvironment(self.raw, ctypes.byref(self._form_info))

    def close(self) -> None:
        if self.form:
            self.c.FPDFDOC_ExitFormFillEnvironment(self.form)
            self.form = None
        if self.raw:
            self.c.FPDF_CloseDocument(self.raw)
            self.raw = None


def _embedded_images(c: Any, page: Any, deadline: _Deadline, number: int) -> tuple[int, float]:
    """The pixels of every image object drawn on ``page`` (form XObjects included), read
    from their dictionaries (nothing is decoded), and the area in square points that the
    page's own image objects cover (their bounding boxes, overlaps counted twice)."""
    width, height = ctypes.c_uint(), ctypes.c_uint()
    box = [ctypes.c_float() for _ in range(4)]
    total = 0
    covered = 0.0
    seen = 0
    stack: list[tuple[Callable[[int], Any], int, int]] = [
        (functools.partial(c.FPDFPage_GetObject, page), int(c.FPDFPage_CountObjects(page)), 0)
    ]
    while stack:
        get, count, depth = stack.pop()
        for index in range(count):
            seen += 1
            if seen % _DEADLINE_EVERY == 0:
                deadline.check(f"counting the objects of page {number}")
            obj = get(index)
            if not obj:
                continue
            kind = c.FPDFPageObj_GetType(obj)
            if kind == c.FPDF_PAGEOBJ_IMAGE:
                if c.FPDFImageObj_GetImagePixelSize(obj, ctypes.byref(width), ctypes.byref(height)):
                    total += width.value * height.value
                if depth == 0 and c.FPDFPageObj_GetBounds(obj, *map(ctypes.byref, box)):
                    left, bottom, right, top = (v.value for v in box)
                    covered += max(0.0, right - left) * max(0.0, top - bottom)
            elif kind == c.FPDF_PAGEOBJ_FORM and depth < _MAX_FORM_DEPTH:
                inner = int(c.FPDFFormObj_CountObjects(obj))
                if inner > 0:
                    stack.append(
                        (functools.partial(c.FPDFFormObj_GetObject, obj), inner, depth + 1)
                    )
    return total, covered


def _draw(
    doc: _Document, page: Any, target: tuple[int, int], deadline: _Deadline, number: int
) -> PILImage.Image:
    """``page`` drawn into a ``target``-sized RGB bitmap (white behind it): PDFium maps
    the page's box onto the bitmap, scaling each axis to fit exactly."""
    c = doc.c
    width, height = target
    stride = width * 3
    buffer = (ctypes.c_ubyte * (stride * height))()
    bitmap = c.FPDFBitmap_CreateEx(width, height, c.FPDFBitmap_BGR, buffer, stride)
    if not bitmap:
        raise pdf_error(doc.label, f"page {number}: no memory for a {width}x{height} bitmap")
    try:
        c.FPDFBitmap_FillRect(bitmap, 0, 0, width, height, 0xFFFFFFFF)
        flags = c.FPDF_ANNOT | c.FPDF_REVERSE_BYTE_ORDER  # RGB byte order, annotations drawn
        pause = c.IFSDK_PAUSE(version=1)
        pause.NeedToPauseNow = type(pause.NeedToPauseNow)(lambda _: deadline.passed())
        status = c.FPDF_RenderPageBitmap_Start(
            bitmap, page, 0, 0, width, height, 0, flags, ctypes.byref(pause)
        )
        while status == c.FPDF_RENDER_TOBECONTINUED:  # paused: only once the deadline passed
            if deadline.passed():
                c.FPDF_RenderPage_Close(page)
                raise deadline.error(f"drawing page {number}")
            status = c.FPDF_RenderPage_Continue(page, ctypes.byref(pause))
        c.FPDF_RenderPage_Close(page)
        if status != c.FPDF_RENDER_DONE:
            raise pdf_error(doc.label, f"page {number} could not be drawn (damaged)")
        if doc.form:
            c.FPDF_FFLDraw(doc.form, bitmap, page, 0, 0, width, height, 0, flags)
        # (RGB is unpacked into Pillow's own memory: nothing points at the buffer after)
        pixels: Any = buffer
        # (typed: Pillow before 11 leaves frombuffer unannotated)
        image: PILImage.Image = PILImage.frombuffer(
            "RGB", (width, height), pixels, "raw", "RGB", stride, 1
        )
        return image
    finally:
        c.FPDFBitmap_Destroy(bitmap)


def render_pdf(
    data: bytes | bytearray | memoryview,
    label: str,
    opts: Options,
    *,
    pages: tuple[int, ...] | None,
    options: PdfOptions,
    count_pages: bool,
) -> PreparedPdf:
    """Check, render and encode the selected pages of the PDF ``data`` (see the module).

    ``count_pages``: ``opts.image_count`` counted this document as one image, so the
    request's image count is that plus its other selected pages; else it is exact."""
    c = _pdfium(label)
    deadline = _Deadline(options.timeout, label)
    raw = data if isinstance(data, bytes) else bytes(data)
    prepared: list[PreparedImage] = []
    with _PDFIUM_LOCK:
        doc = _Document(c, raw, label)
    try:
        with _PDFIUM_LOCK:
            count = doc.page_count()
            plan = _plan(doc, count, opts, pages, options, count_pages)
            doc.init_forms()
        for page_plan in plan:
            deadline.check(f"before page {page_plan.number}")
            with _PDFIUM_LOCK:
                image, scanned = _render_page(doc, page_plan, deadline, opts.max_image_pixels)
            prepared.append(_encoded(image, page_plan, label, opts.detail, scanned))
    finally:
        with _PDFIUM_LOCK:
            doc.close()
    return PreparedPdf(
        pages=tuple(prepared),
        page_numbers=tuple(p.number for p in plan),
        page_count=count,
        source_label=label,
    )


def select_pages(
    count: int, pages: tuple[int, ...] | None, options: PdfOptions, label: str
) -> tuple[int, ...]:
    """The pages to send of a document of ``count`` pages: ``pages`` (checked), or every
    page; refused beyond ``options.max_pages`` (never cut short)."""
    if count < 1:
        raise pdf_error(label, "refused: it has no pages")
    if pages is None:
        if count > options.max_pages:
            raise pdf_error(
                label,
                f"refused: it has {count:,} pages, more than max_pages={options.max_pages}; "
                "select the pages to send (pages=[...])",
            )
        return tuple(range(1, count + 1))
    beyond = [p for p in pages if p > count]
    if beyond:
        raise pdf_error(
            label, f"page {beyond[0]} was selected, but the document has {count} page(s)"
        )
    if len(pages) > options.max_pages:
        raise pdf_error(
            label,
            f"refused: {len(pages)} pages were selected, more than max_pages={options.max_pages}",
        )
    return pages


def pdf_page_count(data: bytes | bytearray | memoryview, label: str) -> int:
    """How many pages the PDF ``data`` has (opened, counted, closed: nothing drawn)."""
    c = _pdfium(label)
    raw = data if isinstance(data, bytes) else bytes(data)
    with _PDFIUM_LOCK:
        doc = _Document(c, raw, label)
        try:
            return doc.page_count()
        finally:
            doc.close()


def _plan(
    doc: _Document,
    count: int,
    opts: Options,
    pages: tuple[int, ...] | None,
    options: PdfOptions,
    count_pages: bool,
) -> list[_Page]:
    """Every selected page's size, checked against the caps, before anything is drawn."""
    label = doc.label
    chosen = select_pages(count, pages, options, label)
    image_count = opts.image_count - 1 + len(chosen) if count_pages else opts.image_count
    plan: list[_Page] = []
    total = 0
    scale = options.dpi / _POINTS_PER_INCH
    for number in chosen:
        width_pt, height_pt = doc.page_points(number)
        if (
            not (math.isfinite(width_pt) and math.isfinite(height_pt))
            or min(width_pt, height_pt) <= 0
        ):
            raise pdf_error(label, f"page {number} has no area ({width_pt:g} x {height_pt:g} pt)")
        native = (max(1, round(width_pt * scale)), max(1, round(height_pt * scale)))
        try:
            target = (
                page_render_size(
                    *native, model=opts.spec, detail=opts.detail, image_count=image_count
                )
                or native
            )
        except ValueError as exc:  # an aspect ratio the model's processor refuses
            raise pdf_error(label, f"page {number}: {exc}") from None
        try:
            opts.check_size(target[0], target[1], label)
        except ImageInputError as exc:
            raise pdf_error(label, f"page {number}: {exc.reason}") from None
        total += target[0] * target[1]
        plan.append(_Page(number, (width_pt, height_pt), native, target))
    if total > options.max_pixels:
        raise pdf_error(
            label,
            f"refused: its {len(plan)} page(s) would be drawn at {total:,} pixels together, "
            f"more than max_pixels={options.max_pixels:,}; select fewer pages or use "
            "detail='low'",
        )
    return plan


def _render_page(
    doc: _Document, plan: _Page, deadline: _Deadline, max_image_pixels: int
) -> tuple[PILImage.Image, bool]:
    """The page drawn at its planned size, and whether images cover most of it."""
    c = doc.c
    page = c.FPDF_LoadPage(doc.raw, plan.number - 1)
    if not page:
        raise pdf_error(doc.label, f"page {plan.number} cannot be read (damaged)")
    try:
        if doc.form:
            c.FORM_OnAfterLoadPage(page, doc.form)
        embedded, covered = _embedded_images(c, page, deadline, plan.number)
        if embedded > max_image_pixels:
            raise pdf_error(
                doc.label,
                f"decompression bomb refused: page {plan.number} embeds images of "
                f"{embedded:,} pixels, more than max_image_pixels={max_image_pixels:,}",
            )
        scanned = covered >= _SCANNED_SHARE * plan.points[0] * plan.points[1]
        return _draw(doc, page, plan.target, deadline, plan.number), scanned
    finally:
        if doc.form:
            c.FORM_OnBeforeClosePage(page, doc.form)
        c.FPDF_ClosePage(page)


def _encoded(
    image: PILImage.Image, plan: _Page, label: str, detail: Detail, scanned: bool
) -> PreparedImage:
    """A drawn page encoded as JPEG when images cover most of it (a scan, a photo:
    PNG would be several times larger and slower), else by the image pipeline's policy
    for pixels that come in no format (JPEG from 1 MP, else the smaller of PNG and
    JPEG: text and line art drawn small are often smaller, and sharper, as PNG)."""
    if scanned:
        data, fmt = save_as(image, "JPEG"), "JPEG"
    else:
        data, fmt = encode_for_server(image, None, False)
    mime = MIME_TYPES[fmt]
    return PreparedImage(
        url=data_uri(data, mime),
        detail=detail,
        mime_type=mime,
        width=image.width,
        height=image.height,
        original_width=plan.native[0],
        original_height=plan.native[1],
        original_format="PDF",
        byte_size=len(data),
        resized=plan.target != plan.native,
        reencoded=True,
        source_label=page_label(label, plan.number),
    )
