"""Caption many images with bounded concurrency: the engine behind ``siliconvision
caption``, the LangChain loader and the LlamaIndex reader.

- :func:`iter_image_files` expands directories into a deterministic list of image files;
- :func:`caption_images` (and :func:`acaption_images`) captions them, at most
  ``concurrency`` requests in flight, yielding one :class:`CaptionRecord` per image as
  each finishes. A failure (a bad image, an API error after the retries) becomes a
  record with ``error`` set: it never stops the batch;
- :func:`load_done` reads back a JSONL file of records, so an interrupted run can
  resume where it stopped: a record counts as done only for the same image bytes,
  model, prompt, detail and backend (:func:`caption_key`, :func:`backend_label`);
- :func:`caption_item` is the work for one image (also behind
  :func:`siliconvision.ray_data.caption_dataset`).

Example:
    >>> from siliconvision.client import SiliconVisionClient
    >>> client = SiliconVisionClient(model="Qwen/Qwen2.5-VL-7B-Instruct")  # doctest: +SKIP
    >>> files = iter_image_files(["photos/"])  # doctest: +SKIP
    >>> with open("captions.jsonl", "a") as out:  # doctest: +SKIP
    ...     for record in caption_images(client, files, concurrency=8):
    ...         out.write(json.dumps(record.to_json()) + "\\n")
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import dataclasses
import hashlib
import json
import os
import random
import re
import sys
import time
import urllib.parse
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .catalog import Detail
from .client import SiliconVisionClient
from .content import resolve_detail
from .errors import ContentError, ImageInputError, SiliconVisionError
from .guards import DEFAULT_MAX_FILE_BYTES
from .images import DEFAULT_PDF_OPTIONS, PdfOptions, PreparedImage, prepare_image, prepare_pdf
from .images._pdf import normalize_pages, pdf_page_count, select_pages
from .images._sources import LocalFile, is_pdf
from .wire import ChatReply

__all__ = [
    "DEFAULT_CAPTION_PROMPT",
    "DEFAULT_EXTRACT_PROMPT",
    "EMULATOR_BACKEND",
    "IMAGE_SUFFIXES",
    "PDF_SUFFIXES",
    "SILICONCLOUD_BACKEND",
    "AsyncCaptionSender",
    "CaptionJob",
    "CaptionRecord",
    "CaptionSchema",
    "CaptionSender",
    "ImageItem",
    "SchemaError",
    "acaption_images",
    "acaption_item",
    "backend_label",
    "caption_images",
    "caption_item",
    "caption_job",
    "caption_key",
    "image_identity",
    "iter_image_files",
    "load_done",
    "pdf_pages",
    "read_image_file",
    "scrub_base64",
]

#: Sends one caption request: ``send(label, messages, **options)`` -> the answer, where
#: ``label`` names the image (its record's ``path``) and ``options`` are
#: :meth:`SiliconVisionClient.chat`'s (``model``, ``detail``, ``response_format``). The
#: default is the client's ``chat``; the adapters pass one that also reports the call to
#: their framework's callbacks and instrumentation.
CaptionSender = Callable[..., ChatReply]
#: The async twin of :data:`CaptionSender` (returns an awaitable).
AsyncCaptionSender = Callable[..., Awaitable[ChatReply]]

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic"}
)

#: What a directory's PDFs are told by (``iter_image_files(..., pdfs=True)``).
PDF_SUFFIXES = frozenset({".pdf"})

DEFAULT_CAPTION_PROMPT = (
    "Describe this image in one to three sentences for a search index: the main subject, "
    "any visible text (quoted exactly), and notable colours or layout. "
    "Answer with the description only."
)


def _retryable_errors() -> tuple[type[BaseException], ...]:
    """Errors worth another attempt (on top of the ``openai`` SDK's own retries):
    429, 5xx, connection failures and time-outs (``APITimeoutError`` is an
    ``APIConnectionError``). Built on first use so that importing this module does
    not import the SDK."""
    import openai

    return (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


def _retryable_or_schema() -> tuple[type[BaseException], ...]:
    """What another attempt may fix: the errors of :func:`_retryable_errors` and an
    answer that does not follow the schema."""
    return (SchemaError, *_retryable_errors())


def iter_image_files(
    paths: Iterable[str | os.PathLike[str]], *, recursive: bool = True, pdfs: bool = False
) -> list[Path]:
    """The image files named by ``paths``, in a deterministic order, each once.

    A directory is expanded to the files in it whose suffix is in
    :data:`IMAGE_SUFFIXES` (case-insensitive; with ``pdfs``, ``.pdf`` too), sorted,
    descending into sub-directories when ``recursive``; hidden files and directories
    (``.name``) are skipped. A file named explicitly is kept whatever its suffix, in the order given
    (if it is not an image, captioning records the error). Duplicates (the same file
    reached twice) are dropped. A path that does not exist raises
    :class:`FileNotFoundError` naming it.

    >>> iter_image_files(["photos/", "extra/cat.png"])  # doctest: +SKIP
    [PosixPath('photos/a.jpg'), PosixPath('photos/sub/b.png'), PosixPath('extra/cat.png')]
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = _file_key(path)
        if key not in seen:
            seen.add(key)
            found.append(path)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            suffixes = IMAGE_SUFFIXES | PDF_SUFFIXES if pdfs else IMAGE_SUFFIXES
            for file in _image_files_in(path, recursive=recursive, suffixes=suffixes):
                add(file)
        elif path.is_file():
            add(path)
        elif path.exists():
            raise FileNotFoundError(f"{str(path)!r} is neither a file nor a directory")
        else:
            raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    return found


def _file_key(path: str | os.PathLike[str]) -> str:
    """One key per file, however it is spelled (relative, ``./``, symlinks)."""
    return os.path.normcase(os.path.realpath(path))


def _image_files_in(directory: Path, *, recursive: bool, suffixes: frozenset[str]) -> list[Path]:
    files: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        base = Path(root)
        files.extend(
            base / name
            for name in names
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes
        )
    files.sort(key=lambda p: p.relative_to(directory).parts)
    return [f for f in files if f.is_file()]


#: The backend label of SiliconCloud's own endpoints (``.cn`` and ``.com``).
SILICONCLOUD_BACKEND = "siliconcloud"
#: The backend label of a :class:`~siliconvision.testing.LocalSiliconCloud` in this process.
EMULATOR_BACKEND = "emulator"
_SILICONCLOUD_HOSTS = frozenset({"api.siliconflow.cn", "api.siliconflow.com"})
_KEY_VERSION = 1


def backend_label(base_url: str) -> str:
    """Where answers from ``base_url`` come from, as caption records store it:
    ``"siliconcloud"`` for SiliconCloud's endpoints, ``"emulator"`` for a
    :class:`~siliconvision.testing.LocalSiliconCloud` running in this process, else the
    base URL itself (a proxy, a self-hosted server, an emulator run elsewhere): never
    mistaken for SiliconCloud.

    >>> backend_label("https://api.siliconflow.cn/v1")
    'siliconcloud'
    >>> backend_label("http://127.0.0.1:8000/v1")
    'http://127.0.0.1:8000/v1'
    """
    url = base_url.rstrip("/")
    if urllib.parse.urlsplit(url).hostname in _SILICONCLOUD_HOSTS:
        return SILICONCLOUD_BACKEND
    emulator = sys.modules.get("siliconvision.testing.emulator")
    if emulator is not None and emulator.is_local_emulator(url):
        return EMULATOR_BACKEND
    return url


def image_identity(image: bytes | bytearray | memoryview | str) -> str:
    """What identifies an image in a caption key: ``"sha256:<hex>"`` of its bytes, or for
    a URL (sent as a URL, never fetched) ``"url:<the URL>"``.

    >>> image_identity(b"abc")[:15]
    'sha256:ba7816bf'
    >>> image_identity("https://example.com/a.png")
    'url:https://example.com/a.png'
    """
    if isinstance(image, str):
        return f"url:{image}"
    return "sha256:" + hashlib.sha256(image).hexdigest()


def caption_key(
    image: str,
    *,
    model: str,
    prompt: str,
    detail: Detail,
    schema: Mapping[str, Any] | None = None,
    page: int | None = None,
    dpi: float | None = None,
) -> str:
    """The identity of one caption job: a SHA-256 of the image's :func:`image_identity`,
    the model, the prompt as sent, the detail and the JSON schema (if any); for a page
    of a PDF (``image`` is then the identity of the PDF's bytes), the page number and
    the resolution it is read at (``dpi``).

    Two runs that would send the same request share the key; changing any of these
    changes it. It is the CLI's resumption key and the ``row_key`` of
    :func:`siliconvision.ray_data.caption_dataset` (one rule for both).

    >>> a = caption_key("sha256:00", model="m", prompt="Describe.", detail="low")
    >>> a == caption_key("sha256:00", model="m", prompt="Describe it.", detail="low")
    False
    >>> p1 = caption_key("sha256:00", model="m", prompt="Describe.", detail="low", page=1)
    >>> p1 == a, p1 == caption_key("sha256:00", model="m", prompt="Describe.", detail="low",
    ...     page=2)
    (False, False)
    """
    fields: list[Any] = [_KEY_VERSION, image, model, prompt, detail, schema]
    if page is not None:  # (an image's key stays what it was before pages existed)
        fields.append({"page": page, "dpi": dpi})
    canonical = json.dumps(
        fields,
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CaptionRecord:
    """The outcome for one image: its ``caption``, or the ``error`` that stopped it.

    ``mime_type``/``width``/``height``/``byte_size`` describe the image as it was
    sent (after downsizing to what the server keeps); they are ``None`` when the
    image could not be read. ``attempts`` counts the requests made for it (0 when it
    failed before any request), not the retries inside the ``openai`` SDK.

    Where it came from: ``backend`` (:func:`backend_label`), ``model``, ``prompt`` (as
    sent), ``detail`` and ``image_sha256`` (of the image's bytes as read); ``key`` is
    their :func:`caption_key`, which resumption matches (with ``backend``).
    ``prompt_tokens``/``completion_tokens``: the usage of the answer. ``page``: for a
    page of a PDF (one record per page), its number (1 for the first); ``None`` for an
    image (and for a PDF that could not be read at all).

    >>> record = CaptionRecord(path="a.png", caption="A red circle.", error=None,
    ...     model="m", mime_type="image/png", width=64, height=64, byte_size=310, attempts=1)
    >>> record.ok, CaptionRecord.from_json(record.to_json()) == record
    (True, True)
    """

    path: str
    caption: str | None
    error: str | None
    model: str
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    byte_size: int | None = None
    attempts: int = 0
    backend: str | None = None
    prompt: str | None = None
    detail: str | None = None
    image_sha256: str | None = None
    key: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    page: int | None = None

    @property
    def ok(self) -> bool:
        """``True`` when the image was captioned (``error`` is ``None``)."""
        return self.error is None and self.caption is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (one line of a captions JSONL file)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaptionRecord:
        """The record from :meth:`to_json`'s dict (unknown keys are ignored).

        Raises ``ValueError`` when ``path`` or ``model`` is missing.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a caption record must be a JSON object, got {type(data).__name__}")
        if not isinstance(data.get("path"), str) or not isinstance(data.get("model"), str):
            raise ValueError("a caption record needs 'path' and 'model' strings")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def load_done(jsonl_path: str | os.PathLike[str], *, backend: str | None = None) -> set[str]:
    """The :attr:`~CaptionRecord.key` of every record captioned OK in a JSONL file of
    records (from ``backend`` only, when given).

    Resumption skips an image only when its key is here: the same image bytes, model,
    prompt and detail, from the same backend (records of the emulator never count
    for SiliconCloud). Records without a key (older files) never count. A missing
    file is an empty set; lines that are not valid records (e.g. the truncated last
    line of an interrupted run) are ignored. An image that failed once and
    succeeded later counts as done.

    >>> load_done("captions.jsonl", backend="siliconcloud")  # doctest: +SKIP
    {'9f2c...', '41d0...'}
    """
    done: set[str] = set()
    try:
        with open(jsonl_path, encoding="utf-8", errors="replace") as file:
            for line in file:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = CaptionRecord.from_json(json.loads(line))
                except (ValueError, TypeError):
                    continue
                if not record.ok or not isinstance(record.key, str):
                    continue
                if backend is None or record.backend == backend:
                    done.add(record.key)
    except FileNotFoundError:
        pass
    return done


# --------------------------------------------------------------------------- one image

_BASE64_RUN = re.compile(r"(?:data:[^,\s]{0,100},)?[A-Za-z0-9+/]{100,}={0,2}")


def scrub_base64(text: str) -> str:
    """``text`` with every base64 run of 100+ characters (and its ``data:`` prefix)
    replaced by ``<base64 elided>``: error messages stay readable and small."""
    return _BASE64_RUN.sub("<base64 elided>", text)


def _describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    from openai import APIStatusError  # loaded: a request was made

    if isinstance(exc, (SiliconVisionError, APIStatusError)) and text:
        return scrub_base64(text)
    return scrub_base64(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: ``base * 2**(attempt-1)``, at most ``cap``, times 0.5-1."""
    if base <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** (attempt - 1)) * (0.5 + random.random() / 2))


class SchemaError(SiliconVisionError):
    """An answer that is not JSON following the requested schema."""


@dataclass(frozen=True)
class CaptionSchema:
    """What a structured caption must follow: a pydantic model or a JSON schema.

    ``json_schema`` is what the prompt shows and the key hashes; :meth:`validate`
    turns an answer into the record's JSON text, or raises :class:`SchemaError`.

    >>> from pydantic import BaseModel
    >>> class Product(BaseModel):
    ...     name: str
    ...     price: float
    >>> CaptionSchema.of(Product).validate('{"name": "tea", "price": 3}')
    '{"name":"tea","price":3.0}'
    """

    json_schema: dict[str, Any]
    model: Any = None  # the pydantic model class, when given one

    @classmethod
    def of(cls, schema: Any) -> CaptionSchema:
        """From a pydantic ``BaseModel`` subclass or a JSON schema ``dict``."""
        if isinstance(schema, CaptionSchema):
            return schema
        json_schema = getattr(schema, "model_json_schema", None)
        if isinstance(schema, type) and callable(json_schema):
            return cls(json_schema=json_schema(), model=schema)
        if isinstance(schema, Mapping):
            try:
                import jsonschema  # type: ignore[import-untyped]
            except ImportError:  # pragma: no cover - ray[data] brings it
                raise ValueError(
                    "validating with a JSON schema dict needs the jsonschema package "
                    "(pip install jsonschema), or pass a pydantic model"
                ) from None
            plain = json.loads(json.dumps(dict(schema)))
            try:
                jsonschema.validators.validator_for(plain).check_schema(plain)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"schema is not a valid JSON schema: {exc.message}") from None
            return cls(json_schema=plain)
        raise ValueError(
            f"schema must be a pydantic model class or a JSON schema dict, got {schema!r}"
        )

    def instruction(self) -> str:
        """What the prompt adds: answer with one JSON object following the schema."""
        text = json.dumps(self.json_schema, ensure_ascii=False, sort_keys=True)
        return f"Answer with one JSON object, and nothing else, following this JSON schema: {text}"

    def validate(self, answer: str) -> str:
        """The answer as compact JSON text, validated; raises :class:`SchemaError`."""
        text = _strip_fence(answer)
        if self.model is not None:
            from pydantic import ValidationError

            try:
                return str(self.model.model_validate_json(text).model_dump_json())
            except ValidationError as exc:
                raise SchemaError(_schema_message(str(exc))) from None
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise SchemaError(_schema_message(f"not JSON: {exc}")) from None
        import jsonschema  # type: ignore[import-untyped]

        try:
            jsonschema.validate(value, self.json_schema)
        except jsonschema.ValidationError as exc:
            raise SchemaError(_schema_message(exc.message)) from None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _strip_fence(answer: str) -> str:
    """An answer's JSON without a Markdown code fence around it."""
    text = answer.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()


def _schema_message(detail: str) -> str:
    detail = " ".join(detail.split())
    return "the answer does not follow the schema: " + (
        detail if len(detail) <= 300 else detail[:300] + "..."
    )


@dataclass(frozen=True)
class CaptionJob:
    """What every image of a batch is captioned with, resolved once (see
    :func:`caption_job`): model, detail, the prompt as sent, retries, backend, schema."""

    prompt: str
    model: str
    detail: Detail
    max_attempts: int
    retry_backoff: float
    max_backoff: float
    backend: str
    schema: CaptionSchema | None = None
    pages: tuple[int, ...] | None = None
    """The pages of each PDF to caption (``None``: every page, up to the cap)."""
    pdf: PdfOptions = DEFAULT_PDF_OPTIONS

    def key(self, image: str, page: int | None = None) -> str:
        """The :func:`caption_key` of ``image`` (an :func:`image_identity`) in this job;
        with ``page``, of that page of the PDF ``image`` identifies."""
        schema = self.schema.json_schema if self.schema is not None else None
        return caption_key(
            image,
            model=self.model,
            prompt=self.prompt,
            detail=self.detail,
            schema=schema,
            page=page,
            dpi=self.pdf.dpi if page is not None else None,
        )


def _check_batch_args(concurrency: int, max_attempts: int, retry_backoff: float | None) -> None:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
    if retry_backoff is not None and not retry_backoff >= 0:
        raise ValueError(f"retry_backoff must be >= 0, got {retry_backoff!r}")


DEFAULT_EXTRACT_PROMPT = "Extract the information in this image."


def caption_job(
    client: SiliconVisionClient,
    *,
    prompt: str | None = None,
    model: str | None = None,
    detail: Detail | None = None,
    schema: Any = None,
    max_attempts: int = 3,
    retry_backoff: float | None = None,
    backend: str | None = None,
    pages: Iterable[int] | None = None,
) -> CaptionJob:
    """Resolve and check a batch's settings (raises before any request).

    ``prompt`` defaults to :data:`DEFAULT_CAPTION_PROMPT` (with ``schema``:
    :data:`DEFAULT_EXTRACT_PROMPT`); with ``schema`` the prompt sent also asks for JSON
    following it. ``backend`` defaults to :func:`backend_label` of the client.
    ``pages``: the pages of each PDF to caption (default every page); the client's
    ``pdf`` options render them.
    """
    if prompt is None:
        prompt = DEFAULT_CAPTION_PROMPT if schema is None else DEFAULT_EXTRACT_PROMPT
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
    model_id = model or client.model
    spec = client.spec(model_id)
    if not spec.vision:
        raise ContentError(
            f"model {model_id!r} does not take images; caption with a vision model "
            "(see `siliconvision models`)"
        )
    resolved = resolve_detail(detail, client.detail, spec=spec)
    caption_schema = CaptionSchema.of(schema) if schema is not None else None
    if caption_schema is not None:
        prompt = f"{prompt.rstrip()}\n\n{caption_schema.instruction()}"
    # One retry policy: the client's backoff (``retry_initial_delay``/``retry_max_delay``)
    # also paces the attempts made here, unless ``retry_backoff`` is given.
    backoff = client.retry_initial_delay if retry_backoff is None else retry_backoff
    return CaptionJob(
        prompt=prompt,
        model=model_id,
        detail=resolved,
        max_attempts=max_attempts,
        retry_backoff=backoff,
        max_backoff=client.retry_max_delay,
        backend=backend if backend is not None else backend_label(client.base_url),
        schema=caption_schema,
        pages=normalize_pages(pages),
        pdf=client.pdf or DEFAULT_PDF_OPTIONS,
    )


def _unique(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    seen: set[str] = set()
    unique: list[Path] = []
    for raw in paths:
        key = _file_key(raw)
        if key not in seen:
            seen.add(key)
            unique.append(Path(raw))
    return unique


def read_image_file(
    path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> bytes:
    """An image file's bytes, read under the core file policy (the reader
    :func:`~siliconvision.images.prepare_image` reads a path with: a regular file of at
    most ``max_bytes``, checked before it is opened): read once, hashed for the key and
    then prepared from these bytes. Raises :class:`ImageInputError` naming the file."""
    return bytes(LocalFile(os.fspath(path), max_bytes).read().data)


@dataclass(frozen=True)
class ImageItem:
    """One image of a batch: ``source`` is what is prepared (bytes, an http(s) URL or
    a ``PIL.Image``), ``identity`` its :func:`image_identity`, ``label`` the name
    records and errors show (a path, a URL, a row). A page of a PDF has its ``page``
    number and comes ``prepared`` (the PDF's identity is its own)."""

    label: str
    source: Any
    identity: str
    image_sha256: str | None = None
    page: int | None = None
    prepared: PreparedImage | None = None

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, label: str) -> ImageItem:
        identity = image_identity(data)
        return cls(label, data, identity, identity.partition(":")[2])

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
    ) -> ImageItem:
        """Reads the file (raises :class:`ImageInputError` naming it)."""
        return cls.from_bytes(read_image_file(path, max_bytes=max_bytes), os.fspath(path))

    @classmethod
    def from_url(cls, url: str) -> ImageItem:
        return cls(url, url, image_identity(url))


def _prepare(client: SiliconVisionClient, item: ImageItem, job: CaptionJob) -> PreparedImage:
    """The image ready to send (each image of a batch is prepared once: no cache)."""
    if item.prepared is not None:
        return item.prepared
    try:
        return prepare_image(
            item.source, model=client.spec(job.model), detail=job.detail, cache=None
        )
    except ImageInputError as exc:
        if exc.source != item.label:  # name the file or row, not "<bytes of N bytes>"
            raise ImageInputError(item.label, exc.reason) from None
        raise


def _base_record(item: ImageItem, job: CaptionJob) -> CaptionRecord:
    return CaptionRecord(
        path=item.label,
        caption=None,
        error=None,
        model=job.model,
        backend=job.backend,
        prompt=job.prompt,
        detail=job.detail,
        image_sha256=item.image_sha256,
        key=job.key(item.identity, item.page),
        page=item.page,
    )


def _with(record: CaptionRecord, **changes: Any) -> CaptionRecord:
    return dataclasses.replace(record, **changes)


def _with_prepared(record: CaptionRecord, prepared: PreparedImage) -> CaptionRecord:
    return _with(
        record,
        mime_type=prepared.mime_type,
        width=prepared.width,
        height=prepared.height,
        byte_size=prepared.byte_size,
    )


def _request(
    prepared: PreparedImage, job: CaptionJob
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    messages = [
        {"role": "user", "content": [prepared.to_part(), {"type": "text", "text": job.prompt}]}
    ]
    options: dict[str, Any] = {"model": job.model, "detail": job.detail}
    if job.schema is not None:
        options["response_format"] = {"type": "json_object"}
    return messages, options


def _answered(record: CaptionRecord, result: Any, attempts: int, job: CaptionJob) -> CaptionRecord:
    """The record of an answer (raises :class:`SchemaError` for a bad structured one)."""
    text = result.content.strip()
    caption = job.schema.validate(text) if job.schema is not None else text
    usage = result.usage
    return _with(
        record,
        caption=caption,
        attempts=attempts,
        prompt_tokens=usage.prompt_tokens if usage is not None else None,
        completion_tokens=usage.completion_tokens if usage is not None else None,
    )


def pdf_pages(
    client: SiliconVisionClient,
    item: ImageItem,
    job: CaptionJob,
    done: Collection[str] = (),
) -> list[ImageItem]:
    """The pages of the PDF ``item`` still to caption, each rendered once (at the size
    the model's server keeps for the job's detail, one image per request) and ready to
    send: the job's ``pages`` (default every page, refused beyond the cap), less those
    whose key is in ``done``. Raises :class:`ImageInputError` for a PDF that cannot be
    read or that exceeds a cap."""
    label = item.label
    count = pdf_page_count(item.source, label)
    wanted = select_pages(count, job.pages, job.pdf, label)
    todo = [page for page in wanted if job.key(item.identity, page) not in done]
    if not todo:
        return []
    document = prepare_pdf(
        item.source,
        model=client.spec(job.model),
        detail=job.detail,
        pages=todo,
        image_count=1,  # one page per request
        options=job.pdf,
        cache=None,
    )
    return [
        dataclasses.replace(
            item, source=None, page=number, prepared=dataclasses.replace(page, source_label=label)
        )
        for number, page in zip(document.page_numbers, document.pages, strict=True)
    ]


def caption_item(
    client: SiliconVisionClient,
    item: ImageItem | Callable[[], ImageItem],
    job: CaptionJob,
    send: CaptionSender | None = None,
) -> CaptionRecord:
    """Caption one image: prepare it, ask (up to ``job.max_attempts`` requests on 429,
    5xx, connection errors, time-outs and answers off the schema), and record the
    outcome. Never raises for the image's sake: a failure is a record with ``error``.

    ``item`` may be a function that reads it (a failure to read is recorded too, under
    ``label`` of :class:`ImageInputError`). ``send`` makes each request instead of
    ``client.chat`` (see :data:`CaptionSender`)."""
    attempts = 0
    record: CaptionRecord | None = None
    try:
        if callable(item):
            item = item()
        record = _base_record(item, job)
        prepared = _prepare(client, item, job)
        record = _with_prepared(record, prepared)
        messages, options = _request(prepared, job)
        while True:
            attempts += 1
            try:
                if send is None:
                    result = client.chat(messages, **options)
                else:
                    result = send(record.path, messages, **options)
                return _answered(record, result, attempts, job)
            except _retryable_or_schema():
                if attempts >= job.max_attempts:
                    raise
                time.sleep(_backoff_delay(attempts, job.retry_backoff, job.max_backoff))
    except Exception as exc:
        return _failed(record, item, job, exc, attempts)


async def acaption_item(
    client: SiliconVisionClient,
    item: ImageItem | Callable[[], ImageItem],
    job: CaptionJob,
    send: AsyncCaptionSender | None = None,
) -> CaptionRecord:
    """The async :func:`caption_item` (reading and preparing run in a thread)."""
    attempts = 0
    record: CaptionRecord | None = None
    try:
        if callable(item):
            item = await asyncio.to_thread(item)
        record = _base_record(item, job)
        # Decoding and resizing is CPU work: keep it off the event loop.
        prepared = await asyncio.to_thread(_prepare, client, item, job)
        record = _with_prepared(record, prepared)
        messages, options = _request(prepared, job)
        while True:
            attempts += 1
            try:
                if send is None:
                    result = await client.achat(messages, **options)
                else:
                    result = await send(record.path, messages, **options)
                return _answered(record, result, attempts, job)
            except _retryable_or_schema():
                if attempts >= job.max_attempts:
                    raise
                await asyncio.sleep(_backoff_delay(attempts, job.retry_backoff, job.max_backoff))
    except Exception as exc:
        return _failed(record, item, job, exc, attempts)


def _failed(
    record: CaptionRecord | None,
    item: ImageItem | Callable[[], ImageItem],
    job: CaptionJob,
    exc: BaseException,
    attempts: int,
) -> CaptionRecord:
    if record is None:  # it could not even be read
        label = getattr(item, "label", None) or getattr(exc, "source", "?")
        record = CaptionRecord(
            path=str(label),
            caption=None,
            error=None,
            model=job.model,
            backend=job.backend,
            prompt=job.prompt,
            detail=job.detail,
        )
    return _with(record, error=_describe_error(exc), attempts=attempts)


@dataclass(frozen=True)
class _PathItem:
    """A file to read when its turn comes (in the worker thread)."""

    path: Path
    max_bytes: int = DEFAULT_MAX_FILE_BYTES

    @property
    def label(self) -> str:
        return str(self.path)

    def __call__(self) -> ImageItem:
        return ImageItem.from_path(self.path, max_bytes=self.max_bytes)


#: What one unit of batch work gives: a record, or the pages of a PDF to send (none:
#: everything in it was already done).
_Outcome = CaptionRecord | list[ImageItem]


def _read_unit(
    client: SiliconVisionClient, unit: _PathItem, job: CaptionJob, done: Collection[str]
) -> ImageItem | _Outcome:
    """A file read: its item to caption, or (a PDF) the pages to send, or its record."""
    try:
        item = unit()
    except Exception as exc:
        return _failed(None, unit, job, exc, 0)
    if isinstance(item.source, (bytes, bytearray, memoryview)) and is_pdf(item.source):
        try:
            return pdf_pages(client, item, job, done)
        except Exception as exc:
            return _failed(_base_record(item, job), item, job, exc, 0)
    if done and job.key(item.identity) in done:
        return []
    return item


def _run_unit(
    client: SiliconVisionClient,
    unit: _PathItem | ImageItem,
    job: CaptionJob,
    send: CaptionSender | None,
    done: Collection[str],
) -> _Outcome:
    if isinstance(unit, _PathItem):
        read = _read_unit(client, unit, job, done)
        if not isinstance(read, ImageItem):
            return read
        unit = read
    return caption_item(client, unit, job, send)


async def _arun_unit(
    client: SiliconVisionClient,
    unit: _PathItem | ImageItem,
    job: CaptionJob,
    send: AsyncCaptionSender | None,
    done: Collection[str],
) -> _Outcome:
    if isinstance(unit, _PathItem):
        # Reading, and rendering a PDF's pages, is file and CPU work: off the event loop.
        read = await asyncio.to_thread(_read_unit, client, unit, job, done)
        if not isinstance(read, ImageItem):
            return read
        unit = read
    return await acaption_item(client, unit, job, send)


class _Units:
    """The work of a batch: the files, then each PDF's pages as it is read (sent next,
    ahead of the remaining files); and, when ``ordered``, the records held back until
    every record of the files before them is in (files in input order, pages in page
    order)."""

    def __init__(self, paths: list[Path], max_bytes: int, *, ordered: bool) -> None:
        self.todo: collections.deque[tuple[_PathItem | ImageItem, int]] = collections.deque(
            (_PathItem(path, max_bytes), slot) for slot, path in enumerate(paths)
        )
        self.ordered = ordered
        self._expected: list[int | None] = [None] * len(paths)
        self._held: list[list[CaptionRecord]] = [[] for _ in paths]
        self._next = 0

    def done(
        self, slot: int, unit: _PathItem | ImageItem, outcome: _Outcome
    ) -> list[CaptionRecord]:
        """Take a unit's outcome; the records that may be yielded now."""
        if isinstance(outcome, CaptionRecord):
            if isinstance(unit, _PathItem):
                self._expected[slot] = 1
            records = [outcome]
        else:  # a PDF's pages: sent next, in page order
            self._expected[slot] = len(outcome)
            self.todo.extendleft((page, slot) for page in reversed(outcome))
            records = []
        if not self.ordered:
            return records
        self._held[slot].extend(records)
        ready: list[CaptionRecord] = []
        while self._next < len(self._held):
            held, expected = self._held[self._next], self._expected[self._next]
            if expected is None or len(held) < expected:
                break
            ready.extend(sorted(held, key=lambda record: record.page or 0))
            self._held[self._next] = []
            self._next += 1
        return ready


def caption_images(
    client: SiliconVisionClient,
    paths: Sequence[str | os.PathLike[str]],
    *,
    prompt: str | None = None,
    model: str | None = None,
    detail: Detail | None = None,
    concurrency: int = 4,
    max_attempts: int = 3,
    retry_backoff: float | None = None,
    on_record: Callable[[CaptionRecord], None] | None = None,
    schema: Any = None,
    backend: str | None = None,
    send: CaptionSender | None = None,
    pages: Iterable[int] | None = None,
    done: Collection[str] = (),
    ordered: bool = False,
) -> Iterator[CaptionRecord]:
    """Caption ``paths``, yielding one :class:`CaptionRecord` per image as each finishes.

    - Lazy: nothing is sent until the iterator is advanced; at most ``concurrency``
      images are in flight at any time (threads of a ``ThreadPoolExecutor``), and
      closing the iterator early cancels what has not started.
    - Each file is captioned exactly once per call (however its path is spelled;
      the first spelling is the record's ``path``); records come in completion
      order (input order when ``concurrency=1``, or with ``ordered=True``: files in
      input order, a PDF's pages in page order, each yielded as soon as the records
      before it are).
    - A PDF (told by its bytes) is captioned page by page: one record per page, its
      ``page`` set, each page rendered once at the size the model's server keeps and
      sent in its own request (its pages share the ``concurrency``). ``pages`` selects
      the pages of every PDF (default every page, up to the client's ``pdf`` cap); a
      PDF that cannot be read or exceeds a cap is one record with ``error`` set.
    - ``done``: :attr:`~CaptionRecord.key`\\ s already captioned (:func:`load_done`): the
      images and PDF pages they name are skipped (no record).
    - ``model``/``detail`` default to the client's (then the catalog's) settings.
    - Failures never stop the batch: a bad image (:class:`ImageInputError`) or an
      API error becomes a record with ``error`` set. Rate limits (429), server
      errors (5xx), connection errors and time-outs are retried up to
      ``max_attempts`` requests per image (on top of the SDK's own ``max_retries``),
      with exponential backoff from ``retry_backoff`` seconds (default: the client's
      ``retry_initial_delay``), each wait at most the client's ``retry_max_delay``.
    - ``on_record`` is called with each record, in the iterating thread, just before
      it is yielded.
    - ``prompt`` defaults to :data:`DEFAULT_CAPTION_PROMPT`. With ``schema`` (a pydantic
      model or a JSON schema dict) the answer is asked for as JSON following it,
      validated (an answer that does not follow it is retried, then recorded as an
      error), and ``caption`` is its JSON text.
    - ``backend`` overrides :func:`backend_label` in the records.
    - With the client's ``rate_limits``, every request waits for its reservation.
    - ``send`` (a :data:`CaptionSender`) makes each request instead of ``client.chat``;
      it runs in the caller's context (frameworks keep callbacks and spans there).

    A client without an API key raises :class:`~siliconvision.client.MissingAPIKeyError`
    on the first ``next()``, before any image is read.

    >>> for record in caption_images(client, iter_image_files(["photos"])):  # doctest: +SKIP
    ...     print(record.path, record.caption if record.ok else record.error)
    """
    _check_batch_args(concurrency, max_attempts, retry_backoff)
    job = caption_job(
        client,
        prompt=prompt,
        model=model,
        detail=detail,
        schema=schema,
        max_attempts=max_attempts,
        retry_backoff=retry_backoff,
        backend=backend,
        pages=pages,
    )
    units = _Units(_unique(paths), client.max_file_bytes, ordered=ordered)
    return _caption_iter(client, units, job, concurrency, on_record, send, frozenset(done))


def _caption_iter(
    client: SiliconVisionClient,
    units: _Units,
    job: CaptionJob,
    concurrency: int,
    on_record: Callable[[CaptionRecord], None] | None,
    send: CaptionSender | None,
    done: Collection[str],
) -> Iterator[CaptionRecord]:
    if not units.todo:
        return
    _ = client.openai  # a missing key fails here, once, not once per image
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=min(concurrency, len(units.todo)), thread_name_prefix="siliconvision-caption"
    )
    pending: dict[concurrent.futures.Future[_Outcome], tuple[_PathItem | ImageItem, int]] = {}
    try:
        while units.todo or pending:
            while units.todo and len(pending) < concurrency:
                unit, slot = units.todo.popleft()
                # In the caller's context: frameworks keep callbacks and spans in contextvars.
                context = contextvars.copy_context()
                future = executor.submit(context.run, _run_unit, client, unit, job, send, done)
                pending[future] = (unit, slot)
            finished, _ = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                unit, slot = pending.pop(future)
                for record in units.done(slot, unit, future.result()):
                    if on_record is not None:
                        on_record(record)
                    yield record
    finally:
        for future in pending:
            future.cancel()
        # Requests already running finish in their threads; nothing new starts.
        executor.shutdown(wait=False, cancel_futures=True)


def acaption_images(
    client: SiliconVisionClient,
    paths: Sequence[str | os.PathLike[str]],
    *,
    prompt: str | None = None,
    model: str | None = None,
    detail: Detail | None = None,
    concurrency: int = 4,
    max_attempts: int = 3,
    retry_backoff: float | None = None,
    on_record: Callable[[CaptionRecord], None] | None = None,
    schema: Any = None,
    backend: str | None = None,
    send: AsyncCaptionSender | None = None,
    pages: Iterable[int] | None = None,
    done: Collection[str] = (),
    ordered: bool = False,
) -> AsyncIterator[CaptionRecord]:
    """The async twin of :func:`caption_images` (same arguments, same guarantees).

    Uses the client's async methods; at most ``concurrency`` images are in flight
    (a window of that many tasks); closing the iterator (``aclose()`` or leaving an
    ``async for`` early) cancels the images still in flight.

    >>> async for record in acaption_images(client, files, concurrency=8):  # doctest: +SKIP
    ...     print(record.path, record.ok)
    """
    _check_batch_args(concurrency, max_attempts, retry_backoff)
    job = caption_job(
        client,
        prompt=prompt,
        model=model,
        detail=detail,
        schema=schema,
        max_attempts=max_attempts,
        retry_backoff=retry_backoff,
        backend=backend,
        pages=pages,
    )
    units = _Units(_unique(paths), client.max_file_bytes, ordered=ordered)
    return _acaption_iter(client, units, job, concurrency, on_record, send, frozenset(done))


async def _acaption_iter(
    client: SiliconVisionClient,
    units: _Units,
    job: CaptionJob,
    concurrency: int,
    on_record: Callable[[CaptionRecord], None] | None,
    send: AsyncCaptionSender | None,
    done: Collection[str],
) -> AsyncIterator[CaptionRecord]:
    if not units.todo:
        return
    _ = client.async_openai  # a missing key fails here, once
    # A window of `concurrency` tasks: later images are not even scheduled until a
    # slot frees up, so a huge batch never creates a huge number of tasks.
    pending: dict[asyncio.Task[_Outcome], tuple[_PathItem | ImageItem, int]] = {}
    try:
        while units.todo or pending:
            while units.todo and len(pending) < concurrency:
                unit, slot = units.todo.popleft()
                task = asyncio.ensure_future(_arun_unit(client, unit, job, send, done))
                pending[task] = (unit, slot)
            finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                unit, slot = pending.pop(task)
                for record in units.done(slot, unit, task.result()):
                    if on_record is not None:
                        on_record(record)
                    yield record
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
