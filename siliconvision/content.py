"""Ordered content parts and chat messages, ready for SiliconCloud's wire.

:func:`build_content` turns a sequence of items (text, images in any form, videos,
OpenAI-style part dicts) into the ordered ``content`` list of one user message;
:func:`prepare_messages` does it for a whole conversation, including the parts the
wire cannot carry where they were put (images returned by tools move into a
following user message). Both raise :class:`ContentError` /
:class:`ImageInputError` before anything is sent; nothing is dropped silently.

Example:
    >>> build_content(
    ...     ["Compare these:", Image("a.png", detail="low"), Path("b.jpg")],
    ...     model="OpenGVLab/InternVL2-26B",
    ... )  # doctest: +SKIP
    [{'type': 'image_url', ...}, {'type': 'image_url', ...}, {'type': 'text', ...}]

``image_order``: ``"auto"`` asks the catalog (images before text for InternVL),
``"images_first"`` always moves images and videos before text, ``"preserve"`` keeps
the caller's order. Images always keep their order among themselves.

``detail`` is resolved per image: the image's own, else the call's, else the
instance default, else the catalog default for the model; it is always written
explicitly on the wire.
"""

from __future__ import annotations

import dataclasses
import mimetypes
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, cast

from ._datauri import data_uri
from .catalog import (
    IMAGE_ORDERS,
    Detail,
    ImageOrder,
    ModelSpec,
    as_detail,
    detail_error,
    get_model_spec,
)
from .errors import ContentError, ImageInputError
from .guards import DEFAULT_MAX_FILE_BYTES, LocalFileError, message_url_source, read_local_file
from .images import (
    DEFAULT_CACHE,
    DEFAULT_PDF_OPTIONS,
    Base64Image,
    ImageCache,
    ImageSource,
    PdfOptions,
    is_data_uri,
    is_image_source,
    is_image_url,
    prepare_pages,
)
from .images._pdf import normalize_pages
from .tokens import image_count_key

__all__ = [
    "ContentItem",
    "Image",
    "Pdf",
    "Video",
    "build_content",
    "count_images",
    "prepare_messages",
    "resolve_detail",
]

_MEDIA_TYPES = ("image_url", "video_url")
_FILE_TYPE = "file"
_VIDEO_MIME = {".mp4": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime"}


@dataclass(frozen=True)
class Image:
    """An image with its own ``detail`` (which wins over every other setting).

    >>> Image("photo.jpg", detail="low")  # doctest: +SKIP
    """

    source: ImageSource
    detail: Detail | None = None


@dataclass(frozen=True)
class Pdf:
    """A PDF document: each selected page is sent as one image, in page order, rendered
    at the size the model's server keeps for ``detail`` (see
    :func:`siliconvision.images.prepare_pdf`).

    ``source``: a path, bytes, a binary file, a ``data:application/pdf;base64,`` URI,
    a :class:`~siliconvision.images.Base64Image`, or an http(s) URL (fetched only with
    ``fetch_urls=True``: the server takes images, not PDFs). ``pages``: page numbers, 1
    for the first (default: every page, up to ``PdfOptions.max_pages``). A PDF given as
    a plain image source (a ``Path``, bytes, an :class:`Image`) is sent the same way,
    every page; ``Pdf`` adds the page selection and refuses anything but a PDF.

    >>> Pdf("invoice.pdf", pages=[2, 1])
    Pdf(source='invoice.pdf', pages=(1, 2), detail=None)
    """

    source: ImageSource
    pages: Sequence[int] | None = None
    detail: Detail | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pages", normalize_pages(self.pages))


@dataclass(frozen=True)
class Video:
    """A video for models that take video (Qwen3-VL, Qwen3-Omni).

    ``source`` is an http(s) URL, a ``data:video/...`` URI or a local file path.
    Frames sent = min(fps x seconds, max_frames); clips of 30 s or less are advised.

    >>> Video("https://example.com/clip.mp4", max_frames=16, fps=1.0)
    Video(source='https://example.com/clip.mp4', detail=None, max_frames=16, fps=1.0)
    """

    source: str | os.PathLike[str]
    detail: Detail | None = None
    max_frames: int | None = None
    fps: float | None = None


ContentItem: TypeAlias = "str | Image | Pdf | Video | ImageSource | Mapping[str, Any]"

AllowedDirs: TypeAlias = "Sequence[str | os.PathLike[str]] | None"
"""Directories whose files message content may name (``None``/empty: none)."""


def _is_one_item(value: object) -> bool:
    """Whether :func:`build_content` takes ``value`` as one item, not a sequence of them:
    text, a part dict, an :class:`Image`/:class:`Pdf`/:class:`Video`, or any image source."""
    return isinstance(value, (Mapping, Image, Pdf, Video)) or is_image_source(value)


def resolve_detail(
    *candidates: Detail | str | None, spec: ModelSpec, where: str = "detail"
) -> Detail:
    """The first non-``None`` of ``candidates`` (most specific first), else the catalog's.

    >>> resolve_detail(None, "low", None, spec=get_model_spec("Qwen/Qwen2.5-VL-72B-Instruct"))
    'low'
    """
    for value in candidates:
        if value is None:
            continue
        detail = as_detail(value)
        if detail is None:
            raise ContentError(detail_error(value, where))
        return detail
    return spec.default_detail


def _check_image_order(image_order: str) -> None:
    if image_order not in IMAGE_ORDERS:
        raise ContentError(f"image_order must be one of {list(IMAGE_ORDERS)}, got {image_order!r}")


def _is_media_item(item: object) -> bool:
    if isinstance(item, (Image, Pdf, Video)):
        return True
    if isinstance(item, Mapping):
        return item.get("type") in (*_MEDIA_TYPES, _FILE_TYPE)
    return is_image_source(item) and not isinstance(item, str)  # a str item is text


def _is_image_item(item: object) -> bool:
    if isinstance(item, Mapping):
        return item.get("type") in ("image_url", _FILE_TYPE)
    return _is_media_item(item) and not isinstance(item, Video)


def count_images(items: Iterable[object]) -> int:
    """How many of ``items`` are images (the count some token rules depend on); a PDF
    counts as one here (its pages are counted once it is read, see
    :func:`build_content`)."""
    return sum(1 for item in items if _is_image_item(item))


def _text_part(text: object, where: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ContentError(f"{where}: text must be a string, got {type(text).__name__}")
    return {"type": "text", "text": text}


def _image_url_fields(part: Mapping[str, Any], where: str) -> tuple[str, str | None]:
    image_url = part.get("image_url")
    if isinstance(image_url, str):
        return image_url, None
    if isinstance(image_url, Mapping) and isinstance(image_url.get("url"), str):
        return image_url["url"], image_url.get("detail")
    raise ContentError(
        f"{where}: image_url part needs image_url.url as a string, got {image_url!r}"
    )


# The first bytes of the video containers servers decode (ISO BMFF: MP4/MOV/3GP;
# Matroska/WebM; AVI; MPEG-PS; FLV; Ogg; ASF/WMV); MPEG-TS is checked by its sync bytes.
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
_VIDEO_MAGIC = (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"FLV", b"OggS", b"\x30\x26\xb2\x75")


def _looks_like_video(data: bytes) -> bool:
    if data[4:8] in _ISO_BOXES or data.startswith(_VIDEO_MAGIC):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return True
    return len(data) > 188 and data[0] == 0x47 and data[188] == 0x47  # MPEG-TS


def _video_mime(name: str, where: str) -> str:
    suffix = Path(name).suffix.lower()
    mime = _VIDEO_MIME.get(suffix) or mimetypes.guess_type(Path(name).name)[0]
    if not mime or not mime.startswith("video/"):
        raise ContentError(
            f"{where}: {Path(name).name!r} is not a known video type (mp4, webm, mov)"
        )
    return mime


def _video_data_uri(data: bytes, mime: str, shown: str, where: str) -> str:
    if not _looks_like_video(data):
        raise ContentError(
            f"{where}: {shown!r} is not a video (its bytes match no known video container)"
        )
    return data_uri(data, mime)


def _video_url(video: Video, settings: _Settings, where: str, *, from_message: bool) -> str:
    """The ``video_url.url`` to send: http(s) and ``data:video/`` pass; a local file is
    read (under the file policy) into a data URI."""
    source = video.source
    if isinstance(source, str) and (is_image_url(source) or is_data_uri(source)):
        if is_data_uri(source) and not source[5:11].lower() == "video/":
            raise ContentError(f"{where}: a video data URI must be data:video/...;base64,...")
        return source
    if from_message:
        # Message content: a local path or file: URL is read only inside allowed_dirs,
        # and only when its name is a video type (checked before it is opened).
        mimes: list[str] = []
        found = message_url_source(
            os.fspath(source),
            field=f"{where}: video url",
            allowed_dirs=settings.allowed_dirs,
            max_bytes=settings.max_file_bytes,
            kind="video",
            check_path=lambda path: mimes.append(_video_mime(path, where)),
        )
        if isinstance(found, str):  # (http(s) and data: returned above)
            raise ContentError(f"{where}: video_url.url {found[:60]!r} is not a video URL")
        return _video_data_uri(found.data, mimes[0], str(found.path), where)
    path = Path(source)
    mime = _video_mime(str(path), where)
    try:
        found = read_local_file(path, max_bytes=settings.max_file_bytes)
    except FileNotFoundError:
        raise ContentError(f"{where}: video file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ContentError(f"{where}: video file {str(path)!r}: {exc.strerror or exc}") from None
    except LocalFileError as exc:
        raise ContentError(f"{where}: video file {str(path)!r}: {exc.reason}") from None
    return _video_data_uri(found.data, mime, str(path), where)


def _video_part(
    video: Video, *, settings: _Settings, detail: Detail, where: str, from_message: bool = False
) -> dict[str, Any]:
    spec = settings.spec
    if not spec.video:
        raise ContentError(
            f"{where}: model {spec.id!r} does not take video; use a video model such as "
            "'Qwen/Qwen3-VL-8B-Instruct' or override with get_model_spec(..., video=True)"
        )
    url = _video_url(video, settings, where, from_message=from_message)
    body: dict[str, Any] = {"url": url, "detail": detail}
    if video.max_frames is not None:
        body["max_frames"] = video.max_frames
    if video.fps is not None:
        body["fps"] = video.fps
    return {"type": "video_url", "video_url": body}


def _video_from_part(part: Mapping[str, Any], where: str) -> Video:
    video_url = part.get("video_url")
    if not isinstance(video_url, Mapping) or not isinstance(video_url.get("url"), str):
        raise ContentError(f"{where}: video_url part needs video_url.url as a string")
    return Video(
        source=video_url["url"],
        detail=video_url.get("detail"),
        max_frames=video_url.get("max_frames"),
        fps=video_url.get("fps"),
    )


@dataclass(frozen=True)
class _Settings:
    spec: ModelSpec
    detail: Detail | None
    default_detail: Detail | None
    image_count: int
    fetch_urls: bool
    cache: ImageCache | None
    allowed_dirs: tuple[str | os.PathLike[str], ...] = ()
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    allow_private_urls: bool = False
    pdf: PdfOptions = DEFAULT_PDF_OPTIONS
    count_given: bool = False
    """``image_count`` is the request's real count (given, or found in a first pass);
    otherwise it counted each PDF as one image."""
    counts_used: set[int] = field(default_factory=set, compare=False)
    """The image counts the images of this pass were sized for."""


def _image_parts(
    source: ImageSource,
    own_detail: str | None,
    settings: _Settings,
    where: str,
    *,
    pages: Sequence[int] | None = None,
    only_pdf: bool = False,
) -> list[dict[str, Any]]:
    """The parts of one image source: one image, or a PDF's selected pages."""
    spec = settings.spec
    if not spec.vision:
        raise ContentError(
            f"{where}: model {spec.id!r} does not take images; use a vision model "
            "(see `siliconvision models`) or override with get_model_spec(..., vision=True)"
        )
    detail = resolve_detail(
        own_detail, settings.detail, settings.default_detail, spec=spec, where=f"{where} detail"
    )
    prepared = prepare_pages(
        source,
        model=spec,
        detail=detail,
        image_count=settings.image_count,
        pages=pages,
        options=settings.pdf,
        only_pdf=only_pdf,
        count_pages=not settings.count_given,
        fetch_urls=settings.fetch_urls,
        cache=settings.cache,
        allow_private_urls=settings.allow_private_urls,
        max_file_bytes=settings.max_file_bytes,
    )
    extra = 0 if settings.count_given else len(prepared) - 1
    settings.counts_used.add(settings.image_count + extra)
    return [image.to_part() for image in prepared]


def _message_image_parts(
    url: str,
    own_detail: str | None,
    settings: _Settings,
    where: str,
    *,
    field_name: str = "image url",
    pages: Sequence[int] | None = None,
    only_pdf: bool = False,
) -> list[dict[str, Any]]:
    """An ``image_url`` (or ``file``) part written in message content: its url goes
    through the message policy (http(s) and data: as they are; local files only in
    allowed_dirs)."""
    found = message_url_source(
        url,
        field=f"{where}: {field_name}",
        allowed_dirs=settings.allowed_dirs,
        max_bytes=settings.max_file_bytes,
    )
    source: ImageSource = found if isinstance(found, str) else found.data
    try:
        return _image_parts(source, own_detail, settings, where, pages=pages, only_pdf=only_pdf)
    except ImageInputError as exc:  # name the file, not "<bytes of N bytes>"
        if isinstance(found, str):
            raise
        raise ImageInputError(str(found.path), exc.reason, kind=exc.kind) from None


def _file_parts(part: Mapping[str, Any], settings: _Settings, where: str) -> list[dict[str, Any]]:
    """A ``{"type": "file", "file": {...}}`` part (OpenAI's form): a PDF whose pages are
    sent as images. ``file_data`` is a data URI or base64; ``url`` (an extension) follows
    the message policy (http(s) fetched only with ``fetch_urls``, local files only inside
    ``allowed_dirs``); ``pages`` and ``detail`` select and size the pages."""
    body = part.get("file")
    if not isinstance(body, Mapping):
        raise ContentError(f"{where}: file part needs a 'file' object")
    if body.get("file_id") is not None and body.get("file_data") is None:
        raise ContentError(
            f"{where}: a file given by file_id ({body['file_id']!r}) cannot be sent: "
            "SiliconCloud has no files API; pass its bytes as file_data"
        )
    try:
        pages = normalize_pages(body.get("pages"))
    except ValueError as exc:
        raise ContentError(f"{where}: {exc}") from None
    detail = body.get("detail")
    data, url = body.get("file_data"), body.get("url")
    if data is not None and url is not None:
        raise ContentError(f"{where}: file part gives both file_data and url; give one")
    if isinstance(data, str) and data:
        if is_data_uri(data):
            return _message_image_parts(
                data, detail, settings, where, field_name="file_data", pages=pages, only_pdf=True
            )
        return _image_parts(
            Base64Image(data, None), detail, settings, where, pages=pages, only_pdf=True
        )
    if isinstance(url, str) and url:
        return _message_image_parts(
            url, detail, settings, where, field_name="file url", pages=pages, only_pdf=True
        )
    raise ContentError(f"{where}: file part needs file.file_data (or file.url) as a string")


def _convert_item(item: object, settings: _Settings, where: str) -> list[dict[str, Any]]:
    if isinstance(item, str):
        return [_text_part(item, where)]
    if isinstance(item, Image):
        return _image_parts(item.source, item.detail, settings, where)
    if isinstance(item, Pdf):
        return _image_parts(
            item.source, item.detail, settings, where, pages=item.pages, only_pdf=True
        )
    if isinstance(item, Video):
        return [_video_item(item, settings, where, from_message=False)]
    if isinstance(item, Mapping):
        kind = item.get("type")
        if kind == "text":
            return [_text_part(item.get("text"), where)]
        if kind == "image_url":
            url, own_detail = _image_url_fields(item, where)
            return _message_image_parts(url, own_detail, settings, where)
        if kind == "video_url":
            return [_video_item(_video_from_part(item, where), settings, where, from_message=True)]
        if kind == _FILE_TYPE:
            return _file_parts(item, settings, where)
        raise ContentError(
            f"{where}: content part type {kind!r} is not supported by SiliconCloud chat "
            "(supported: text, image_url, video_url, and file for PDFs)"
        )
    if is_image_source(item):
        return _image_parts(item, None, settings, where)
    raise ContentError(
        f"{where}: cannot send an item of type {type(item).__name__}; pass text (str), "
        "an image (Path, bytes, a binary file, PIL image, siliconvision.Image), a PDF "
        "(siliconvision.Pdf) or a part dict"
    )


def _video_item(
    video: Video, settings: _Settings, where: str, *, from_message: bool
) -> dict[str, Any]:
    detail = resolve_detail(
        video.detail, settings.detail, settings.default_detail, spec=settings.spec
    )
    return _video_part(
        video, settings=settings, detail=detail, where=where, from_message=from_message
    )


def _order_parts(parts: list[dict[str, Any]], image_order: str, spec: ModelSpec) -> None:
    order = spec.image_order if image_order == "auto" else image_order
    if order == "images_first":
        parts.sort(key=lambda part: 0 if part["type"] in _MEDIA_TYPES else 1)  # stable


def build_content(
    items: Iterable[ContentItem] | ContentItem,
    *,
    model: str | ModelSpec,
    image_order: ImageOrder = "auto",
    detail: Detail | None = None,
    default_detail: Detail | None = None,
    image_count: int | None = None,
    fetch_urls: bool = False,
    cache: ImageCache | None = DEFAULT_CACHE,
    allowed_dirs: AllowedDirs = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    allow_private_urls: bool = False,
    pdf: PdfOptions | None = None,
) -> list[dict[str, Any]]:
    """The ordered ``content`` parts of one user message.

    ``items``: text (``str``), images (any :data:`~siliconvision.images.ImageSource`
    but a ``str``: ``Path``, ``bytes``, ``bytearray``, ``memoryview``, a binary file
    object, ``PIL.Image``, :class:`~siliconvision.images.Base64Image`; :class:`Image`;
    or ``{"type":"image_url",...}`` dicts: data URIs are downsized, http(s) URLs pass
    through), :class:`Video`, ``{"type":"text"|"video_url"}`` dicts. A plain ``str``
    is always text: wrap paths in ``Path`` or :class:`Image`. ``image_count``
    (default: the images in ``items``, each page of a PDF one) is the number of images
    in the whole request, which some servers' sizing depends on.

    PDFs (:class:`Pdf`, any image source whose bytes are a PDF, or a
    ``{"type": "file", "file": {"file_data": "data:application/pdf;base64,..."}}``
    part): each selected page becomes one ``image_url`` part, in page order, rendered
    once at the size the model's server keeps for its ``detail``; ``pdf``
    (:class:`~siliconvision.images.PdfOptions`) sets the reference resolution and the
    caps (pages, pixels, time) that refuse a document before anything is sent.

    Local files: a ``Path``, :class:`Image` or :class:`Video` item is the program's
    own choice and is read (a regular file of at most ``max_file_bytes``). The
    ``url`` of an ``image_url``/``video_url`` dict is message content: it is sent as
    it is when it is an http(s) URL or a ``data:`` URI, and a local path or ``file:``
    URL there is read only inside ``allowed_dirs`` (none by default: it raises
    :class:`~siliconvision.errors.ImageInputError`). With ``fetch_urls=True``, URLs
    are fetched through the SSRF guard (``allow_private_urls`` lifts its address
    checks).
    """
    _check_image_order(image_order)
    spec = get_model_spec(model)
    item_list: list[object] = (
        [items] if _is_one_item(items) else list(cast(Iterable[object], items))
    )
    settings = _settings(
        spec,
        detail=detail,
        default_detail=default_detail,
        image_count=image_count if image_count is not None else count_images(item_list),
        fetch_urls=fetch_urls,
        cache=cache,
        allowed_dirs=allowed_dirs,
        max_file_bytes=max_file_bytes,
        allow_private_urls=allow_private_urls,
        pdf=pdf,
        count_given=image_count is not None,
    )
    return _until_counted(
        settings,
        lambda settings: _build_parts(item_list, settings, image_order, prefix=""),
        lambda parts: _count_parts(parts),
    )


_Built = TypeVar("_Built")


def _until_counted(
    settings: _Settings,
    build: Callable[[_Settings], _Built],
    count: Callable[[_Built], int],
) -> _Built:
    """``build(settings)``, built again with the request's real image count when a PDF
    made it differ from the one the images were sized for, in a way the model's rule
    sees (DeepSeek-VL2 sizes images differently beyond two)."""
    built = build(settings)
    if settings.count_given:
        return built
    real = count(built)
    spec = settings.spec
    wanted = image_count_key(spec, real)
    if all(image_count_key(spec, used) == wanted for used in settings.counts_used):
        return built
    exact = dataclasses.replace(settings, image_count=real, count_given=True, counts_used=set())
    return build(exact)


def _count_parts(parts: Iterable[Mapping[str, Any]]) -> int:
    return sum(1 for part in parts if part.get("type") == "image_url")


def _settings(
    spec: ModelSpec,
    *,
    detail: Detail | None,
    default_detail: Detail | None,
    image_count: int,
    fetch_urls: bool,
    cache: ImageCache | None,
    allowed_dirs: AllowedDirs,
    max_file_bytes: int,
    allow_private_urls: bool,
    pdf: PdfOptions | None = None,
    count_given: bool = False,
) -> _Settings:
    if isinstance(allowed_dirs, (str, os.PathLike)):
        allowed_dirs = [allowed_dirs]
    if pdf is not None and not isinstance(pdf, PdfOptions):
        raise ContentError(f"pdf must be a siliconvision.images.PdfOptions, got {pdf!r}")
    return _Settings(
        spec=spec,
        detail=resolve_detail(detail, spec=spec) if detail is not None else None,
        default_detail=(
            resolve_detail(default_detail, spec=spec, where="default_detail")
            if default_detail is not None
            else None
        ),
        image_count=image_count,
        fetch_urls=fetch_urls,
        cache=cache,
        allowed_dirs=tuple(allowed_dirs or ()),
        max_file_bytes=max_file_bytes,
        allow_private_urls=allow_private_urls,
        pdf=DEFAULT_PDF_OPTIONS if pdf is None else pdf,
        count_given=count_given,
    )


def _build_parts(
    items: list[object], settings: _Settings, image_order: str, *, prefix: str
) -> list[dict[str, Any]]:
    parts = [
        part
        for i, item in enumerate(items)
        for part in _convert_item(item, settings, f"{prefix}content item {i}")
    ]
    _order_parts(parts, image_order, settings.spec)
    return parts


def _text_only(content: object, where: str) -> str | list[dict[str, Any]]:
    """System/assistant content: text only on this wire."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, Sequence):
        raise ContentError(f"{where}: content must be a string or a list of parts")
    texts: list[str] = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text":
            texts.append(_text_part(part.get("text"), f"{where} part {i}")["text"])
        else:
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise ContentError(
                f"{where} part {i}: {kind!r} cannot be sent in this role; SiliconCloud takes "
                "images and video only in user (and tool-result) messages"
            )
    return "".join(texts)


def _content_items(content: object, where: str) -> list[Any]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, Sequence) and not is_image_source(content):
        return list(content)
    return [content]


def _count_request_images(messages: Sequence[Mapping[str, Any]]) -> int:
    total = 0
    for message in messages:
        if isinstance(message, Mapping) and message.get("role") in ("user", "tool"):
            content = message.get("content")
            if not isinstance(content, str):
                total += count_images(_content_items(content, ""))
    return total


def prepare_messages(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str | ModelSpec,
    image_order: ImageOrder = "auto",
    detail: Detail | None = None,
    default_detail: Detail | None = None,
    fetch_urls: bool = False,
    cache: ImageCache | None = DEFAULT_CACHE,
    allowed_dirs: AllowedDirs = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    allow_private_urls: bool = False,
    pdf: PdfOptions | None = None,
) -> list[dict[str, Any]]:
    """A conversation in OpenAI chat format, made ready for SiliconCloud.

    Local files and URLs follow :func:`build_content`'s rules: a message's
    ``image_url.url``/``video_url.url`` is sent as it is when it is http(s) or a
    ``data:`` URI, and names a local file only inside ``allowed_dirs``. PDFs (in user
    and tool messages) become one image per selected page, as :func:`build_content`
    makes them (``pdf``: :class:`~siliconvision.images.PdfOptions`).

    - user content lists go through :func:`build_content` (images encoded and
      downsized, ``detail`` explicit, ``image_order`` applied);
    - a ``tool`` message may carry images, but the wire allows only text there:
      its text stays, and its images move into a user message inserted right
      after the run of consecutive tool messages (keeping their order);
    - system and assistant messages take text only (images there raise);
    - ``developer`` is sent as ``system`` (SiliconCloud has no developer role).

    >>> prepare_messages(
    ...     [{"role": "user", "content": ["What is this?", Path("cat.png")]}],
    ...     model="Qwen/Qwen2.5-VL-72B-Instruct",
    ... )  # doctest: +SKIP
    """
    _check_image_order(image_order)
    spec = get_model_spec(model)
    if isinstance(messages, (str, Mapping)) or not isinstance(messages, Sequence):
        raise ContentError("messages must be a list of {'role': ..., 'content': ...} dicts")
    settings = _settings(
        spec,
        detail=resolve_detail(detail, spec=spec) if detail is not None else None,
        default_detail=default_detail,
        image_count=_count_request_images(messages),
        fetch_urls=fetch_urls,
        cache=cache,
        allowed_dirs=allowed_dirs,
        max_file_bytes=max_file_bytes,
        allow_private_urls=allow_private_urls,
        pdf=pdf,
    )
    return _until_counted(
        settings,
        lambda settings: _prepare_conversation(messages, settings, image_order),
        lambda prepared: sum(
            _count_parts(m["content"]) for m in prepared if isinstance(m.get("content"), list)
        ),
    )


def _prepare_conversation(
    messages: Sequence[Mapping[str, Any]], settings: _Settings, image_order: str
) -> list[dict[str, Any]]:
    spec = settings.spec
    prepared: list[dict[str, Any]] = []
    pending_tool_media: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"message {index}"
        if not isinstance(message, Mapping):
            raise ContentError(f"{where}: must be a dict with 'role' and 'content'")
        role = message.get("role")
        if role != "tool" and pending_tool_media:
            prepared.append(_tool_media_message(pending_tool_media, spec, image_order))
            pending_tool_media = []
        out = {k: v for k, v in message.items() if v is not None or k == "content"}
        if role == "user":
            content = message.get("content")
            if not isinstance(content, str):
                items = _content_items(content, where)
                parts = _build_parts(items, settings, image_order, prefix=f"{where}, ")
                if not parts:
                    raise ContentError(f"{where}: user message has no content")
                out["content"] = parts
        elif role in ("system", "developer"):
            out["role"] = "system"
            out["content"] = _text_only(message.get("content"), f"{where} ({role})")
        elif role == "assistant":
            out["content"] = _text_only(message.get("content"), f"{where} (assistant)")
            if not out["content"] and message.get("tool_calls"):
                out["content"] = None
        elif role == "tool":
            if not message.get("tool_call_id"):
                raise ContentError(f"{where}: a tool message needs 'tool_call_id'")
            out["content"], media = _split_tool_content(message.get("content"), settings, where)
            if media:
                pending_tool_media.append({"tool_call_id": message["tool_call_id"], "parts": media})
        else:
            raise ContentError(
                f"{where}: unknown role {role!r} (expected system, user, assistant or tool)"
            )
        prepared.append(out)
    if pending_tool_media:
        prepared.append(_tool_media_message(pending_tool_media, spec, image_order))
    return prepared


def _split_tool_content(
    content: object, settings: _Settings, where: str
) -> tuple[str, list[dict[str, Any]]]:
    if content is None or isinstance(content, str):
        return content or "", []
    items = _content_items(content, where)
    parts = _build_parts(items, settings, "preserve", prefix=f"{where}, ")
    texts = [part["text"] for part in parts if part["type"] == "text"]
    media = [part for part in parts if part["type"] != "text"]
    text = "\n".join(texts)
    if media:
        note = f"[{len(media)} image(s) returned by this tool follow in the next user message]"
        text = f"{text}\n{note}" if text else note
    return text, media


def _tool_media_message(
    pending: list[dict[str, Any]], spec: ModelSpec, image_order: str
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for entry in pending:
        parts.append(
            {"type": "text", "text": f"Images returned by tool call {entry['tool_call_id']}:"}
        )
        parts.extend(entry["parts"])
    _order_parts(parts, image_order, spec)
    return {"role": "user", "content": parts}
