"""Caption many images with bounded concurrency: the engine behind ``siliconvision
caption``, the LangChain loader and the LlamaIndex reader.

- :func:`iter_image_files` expands directories into a deterministic list of image files;
- :func:`caption_images` (and :func:`acaption_images`) captions them, at most
  ``concurrency`` requests in flight, yielding one :class:`CaptionRecord` per image as
  each finishes. A failure (a bad image, an API error after the retries) becomes a
  record with ``error`` set: it never stops the batch;
- :func:`load_done` reads back a JSONL file of records, so an interrupted run can
  resume where it stopped.

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
import concurrent.futures
import contextvars
import json
import os
import random
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
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
from .errors import ContentError, SiliconVisionError
from .images import PreparedImage, prepare_image
from .wire import ChatResult

__all__ = [
    "DEFAULT_CAPTION_PROMPT",
    "IMAGE_SUFFIXES",
    "AsyncCaptionSender",
    "CaptionRecord",
    "CaptionSender",
    "acaption_images",
    "caption_images",
    "iter_image_files",
    "load_done",
]

#: Sends one caption request: ``send(path, messages, **options)`` -> the answer, where
#: ``options`` are :meth:`SiliconVisionClient.chat`'s (``model``, ``detail``). The
#: default is the client's ``chat``; the adapters pass one that also reports the call
#: to their framework's callbacks and instrumentation.
CaptionSender = Callable[..., ChatResult]
#: The async twin of :data:`CaptionSender` (returns an awaitable).
AsyncCaptionSender = Callable[..., Awaitable[ChatResult]]

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic"}
)

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


def iter_image_files(
    paths: Iterable[str | os.PathLike[str]], *, recursive: bool = True
) -> list[Path]:
    """The image files named by ``paths``, in a deterministic order, each once.

    A directory is expanded to the files in it whose suffix is in
    :data:`IMAGE_SUFFIXES` (case-insensitive), sorted, descending into
    sub-directories when ``recursive``; hidden files and directories (``.name``) are
    skipped. A file named explicitly is kept whatever its suffix, in the order given
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
            for file in _image_files_in(path, recursive=recursive):
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


def _image_files_in(directory: Path, *, recursive: bool) -> list[Path]:
    files: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        base = Path(root)
        files.extend(
            base / name
            for name in names
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    files.sort(key=lambda p: p.relative_to(directory).parts)
    return [f for f in files if f.is_file()]


@dataclass(frozen=True)
class CaptionRecord:
    """The outcome for one image: its ``caption``, or the ``error`` that stopped it.

    ``mime_type``/``width``/``height``/``byte_size`` describe the image as it was
    sent (after downsizing to what the server keeps); they are ``None`` when the
    image could not be read. ``attempts`` counts the requests made for it (0 when it
    failed before any request), not the retries inside the ``openai`` SDK.

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


def load_done(jsonl_path: str | os.PathLike[str]) -> set[str]:
    """The ``path`` of every record captioned OK in a JSONL file of records.

    A missing file is an empty set. Lines that are not valid records (e.g. the
    truncated last line of an interrupted run) are ignored. An image that failed
    once and succeeded later counts as done.

    >>> load_done("captions.jsonl")  # doctest: +SKIP
    {'photos/a.jpg', 'photos/sub/b.png'}
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
                if record.ok:
                    done.add(record.path)
    except FileNotFoundError:
        pass
    return done


def _describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    from openai import APIStatusError  # loaded: a request was made

    if isinstance(exc, (SiliconVisionError, APIStatusError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: ``base * 2**(attempt-1)``, at most ``cap``, times 0.5-1."""
    if base <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** (attempt - 1)) * (0.5 + random.random() / 2))


@dataclass(frozen=True)
class _Job:
    """What one image needs, resolved once per batch."""

    prompt: str
    model: str
    detail: Detail
    max_attempts: int
    retry_backoff: float
    max_backoff: float


def _check_batch_args(concurrency: int, max_attempts: int, retry_backoff: float | None) -> None:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
    if retry_backoff is not None and not retry_backoff >= 0:
        raise ValueError(f"retry_backoff must be >= 0, got {retry_backoff!r}")


def _make_job(
    client: SiliconVisionClient,
    *,
    prompt: str,
    model: str | None,
    detail: Detail | None,
    max_attempts: int,
    retry_backoff: float | None,
) -> _Job:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    model_id = model or client.model
    spec = client.spec(model_id)
    if not spec.vision:
        raise ContentError(
            f"model {model_id!r} does not take images; caption with a vision model "
            "(see `siliconvision models`)"
        )
    resolved = resolve_detail(detail, client.detail, spec=spec)
    # One retry policy: the client's backoff (``retry_initial_delay``/``retry_max_delay``)
    # also paces the attempts made here, unless ``retry_backoff`` is given.
    backoff = client.retry_initial_delay if retry_backoff is None else retry_backoff
    return _Job(prompt, model_id, resolved, max_attempts, backoff, client.retry_max_delay)


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


def _prepare(
    client: SiliconVisionClient, path: Path, job: _Job
) -> tuple[PreparedImage, CaptionRecord]:
    """The prepared image and a record holding its metadata (raises on bad input)."""
    # Each image of a batch is read once: no point keeping it in the image cache.
    prepared = prepare_image(path, model=client.spec(job.model), detail=job.detail, cache=None)
    base = CaptionRecord(
        path=str(path),
        caption=None,
        error=None,
        model=job.model,
        mime_type=prepared.mime_type,
        width=prepared.width,
        height=prepared.height,
        byte_size=prepared.byte_size,
        attempts=0,
    )
    return prepared, base


def _messages(prepared: PreparedImage, job: _Job) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [prepared.to_part(), {"type": "text", "text": job.prompt}]}]


def _failed(path: Path, job: _Job, exc: BaseException, base: CaptionRecord | None) -> CaptionRecord:
    if base is None:
        base = CaptionRecord(path=str(path), caption=None, error=None, model=job.model)
    return _with(base, error=_describe_error(exc))


def _with(record: CaptionRecord, **changes: Any) -> CaptionRecord:
    return CaptionRecord(**{**asdict(record), **changes})


def _caption_one(
    client: SiliconVisionClient, path: Path, job: _Job, send: CaptionSender | None
) -> CaptionRecord:
    base: CaptionRecord | None = None
    attempts = 0
    try:
        prepared, meta = _prepare(client, path, job)
        base = meta
        messages = _messages(prepared, job)
        while True:
            attempts += 1
            try:
                if send is None:
                    result = client.chat(messages, model=job.model, detail=job.detail)
                else:
                    result = send(path, messages, model=job.model, detail=job.detail)
                return _with(meta, caption=result.content.strip(), attempts=attempts)
            except _retryable_errors():
                if attempts >= job.max_attempts:
                    raise
                time.sleep(_backoff_delay(attempts, job.retry_backoff, job.max_backoff))
    except Exception as exc:
        record = _failed(path, job, exc, base)
        return _with(record, attempts=attempts)


async def _acaption_one(
    client: SiliconVisionClient, path: Path, job: _Job, send: AsyncCaptionSender | None
) -> CaptionRecord:
    base: CaptionRecord | None = None
    attempts = 0
    try:
        # Decoding and resizing is CPU work: keep it off the event loop.
        prepared, meta = await asyncio.to_thread(_prepare, client, path, job)
        base = meta
        messages = _messages(prepared, job)
        while True:
            attempts += 1
            try:
                if send is None:
                    result = await client.achat(messages, model=job.model, detail=job.detail)
                else:
                    result = await send(path, messages, model=job.model, detail=job.detail)
                return _with(meta, caption=result.content.strip(), attempts=attempts)
            except _retryable_errors():
                if attempts >= job.max_attempts:
                    raise
                await asyncio.sleep(_backoff_delay(attempts, job.retry_backoff, job.max_backoff))
    except Exception as exc:
        record = _failed(path, job, exc, base)
        return _with(record, attempts=attempts)


def caption_images(
    client: SiliconVisionClient,
    paths: Sequence[str | os.PathLike[str]],
    *,
    prompt: str = DEFAULT_CAPTION_PROMPT,
    model: str | None = None,
    detail: Detail | None = None,
    concurrency: int = 4,
    max_attempts: int = 3,
    retry_backoff: float | None = None,
    on_record: Callable[[CaptionRecord], None] | None = None,
    send: CaptionSender | None = None,
) -> Iterator[CaptionRecord]:
    """Caption ``paths``, yielding one :class:`CaptionRecord` per image as each finishes.

    - Lazy: nothing is sent until the iterator is advanced; at most ``concurrency``
      images are in flight at any time (threads of a ``ThreadPoolExecutor``), and
      closing the iterator early cancels what has not started.
    - Each file is captioned exactly once per call (however its path is spelled;
      the first spelling is the record's ``path``); records come in completion
      order (input order when ``concurrency=1``).
    - ``model``/``detail`` default to the client's (then the catalog's) settings.
    - Failures never stop the batch: a bad image (:class:`ImageInputError`) or an
      API error becomes a record with ``error`` set. Rate limits (429), server
      errors (5xx), connection errors and time-outs are retried up to
      ``max_attempts`` requests per image (on top of the SDK's own ``max_retries``),
      with exponential backoff from ``retry_backoff`` seconds (default: the client's
      ``retry_initial_delay``), each wait at most the client's ``retry_max_delay``.
    - ``on_record`` is called with each record, in the iterating thread, just before
      it is yielded.
    - ``send`` (a :data:`CaptionSender`) makes each request instead of ``client.chat``.

    A client without an API key raises :class:`~siliconvision.client.MissingAPIKeyError`
    on the first ``next()``, before any image is read.

    >>> for record in caption_images(client, iter_image_files(["photos"])):  # doctest: +SKIP
    ...     print(record.path, record.caption if record.ok else record.error)
    """
    _check_batch_args(concurrency, max_attempts, retry_backoff)
    job = _make_job(
        client,
        prompt=prompt,
        model=model,
        detail=detail,
        max_attempts=max_attempts,
        retry_backoff=retry_backoff,
    )
    return _caption_iter(client, _unique(paths), job, concurrency, on_record, send)


def _submit(
    executor: concurrent.futures.ThreadPoolExecutor,
    client: SiliconVisionClient,
    path: Path,
    job: _Job,
    send: CaptionSender | None,
) -> concurrent.futures.Future[CaptionRecord]:
    # In the caller's context: frameworks keep callbacks and trace spans in contextvars.
    context = contextvars.copy_context()
    return executor.submit(context.run, _caption_one, client, path, job, send)


def _caption_iter(
    client: SiliconVisionClient,
    paths: list[Path],
    job: _Job,
    concurrency: int,
    on_record: Callable[[CaptionRecord], None] | None,
    send: CaptionSender | None,
) -> Iterator[CaptionRecord]:
    if not paths:
        return
    _ = client.openai  # a missing key fails here, once, not once per image
    todo = iter(paths)
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=min(concurrency, len(paths)), thread_name_prefix="siliconvision-caption"
    )
    pending: set[concurrent.futures.Future[CaptionRecord]] = set()
    try:
        for path in todo:
            pending.add(_submit(executor, client, path, job, send))
            if len(pending) >= concurrency:
                break
        while pending:
            finished, pending = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                next_path = next(todo, None)
                if next_path is not None:
                    pending.add(_submit(executor, client, next_path, job, send))
                record = future.result()
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
    prompt: str = DEFAULT_CAPTION_PROMPT,
    model: str | None = None,
    detail: Detail | None = None,
    concurrency: int = 4,
    max_attempts: int = 3,
    retry_backoff: float | None = None,
    on_record: Callable[[CaptionRecord], None] | None = None,
    send: AsyncCaptionSender | None = None,
) -> AsyncIterator[CaptionRecord]:
    """The async twin of :func:`caption_images` (same arguments, same guarantees).

    Uses the client's async methods; at most ``concurrency`` images are in flight
    (guarded by an ``asyncio.Semaphore``); closing the iterator (``aclose()`` or
    leaving an ``async for`` early) cancels the images still in flight.

    >>> async for record in acaption_images(client, files, concurrency=8):  # doctest: +SKIP
    ...     print(record.path, record.ok)
    """
    _check_batch_args(concurrency, max_attempts, retry_backoff)
    job = _make_job(
        client,
        prompt=prompt,
        model=model,
        detail=detail,
        max_attempts=max_attempts,
        retry_backoff=retry_backoff,
    )
    return _acaption_iter(client, _unique(paths), job, concurrency, on_record, send)


async def _acaption_iter(
    client: SiliconVisionClient,
    paths: list[Path],
    job: _Job,
    concurrency: int,
    on_record: Callable[[CaptionRecord], None] | None,
    send: AsyncCaptionSender | None,
) -> AsyncIterator[CaptionRecord]:
    if not paths:
        return
    _ = client.async_openai  # a missing key fails here, once
    semaphore = asyncio.Semaphore(concurrency)

    async def guarded(path: Path) -> CaptionRecord:
        async with semaphore:
            return await _acaption_one(client, path, job, send)

    todo = iter(paths)
    # A window of `concurrency` tasks: later images are not even scheduled until a
    # slot frees up, so a huge batch never creates a huge number of tasks.
    pending: set[asyncio.Task[CaptionRecord]] = set()
    try:
        for path in todo:
            pending.add(asyncio.ensure_future(guarded(path)))
            if len(pending) >= concurrency:
                break
        while pending:
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                next_path = next(todo, None)
                if next_path is not None:
                    pending.add(asyncio.ensure_future(guarded(next_path)))
                record = task.result()
                if on_record is not None:
                    on_record(record)
                yield record
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
