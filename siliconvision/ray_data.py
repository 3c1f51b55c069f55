"""Caption millions of images on Ray Data, within SiliconCloud's rate limits (the ``[ray]`` extra).

:func:`caption_dataset` maps a dataset of images to captions (or schema-validated JSON
records) with a pool of actors. Each actor prepares its images itself (read, downsized
to what the server keeps), so the object store carries paths or small bytes rather than
decoded photos; every image is one request (``max_attempts`` on 429, 5xx, time-outs
and answers off the schema); a failure becomes a row with ``error`` set, so the job
always finishes. With ``rate_limits``, one named actor holds the account's RPM/TPM for
every worker of the cluster (:func:`cluster_rate_limits`).

Example:
    >>> import ray
    >>> from siliconvision import RateLimits
    >>> from siliconvision.ray_data import caption_dataset
    >>> ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)  # doctest: +SKIP
    >>> out = caption_dataset(ds, model="Qwen/Qwen2.5-VL-7B-Instruct",
    ...     rate_limits=RateLimits(rpm=1000, tpm=80_000), concurrency=8)  # doctest: +SKIP
    >>> out.write_parquet("captions/")  # doctest: +SKIP

On a resumed run (``resume_from="captions/"``) rows already captioned there are not
sent again, and not written again either: the earlier output and the new one together
hold every row (a row that failed before and succeeded now is in both: keep the one
without ``error``).

The core package never imports Ray; this module does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import inspect
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

import numpy as np
import pyarrow as pa
import ray
from pydantic import SecretStr
from ray.data import ActorPoolStrategy, Dataset
from ray.data.block import BlockAccessor

from .captions import (
    CaptionJob,
    CaptionRecord,
    ImageItem,
    backend_label,
    caption_item,
    caption_job,
    image_identity,
)
from .catalog import Detail
from .client import SiliconVisionClient, resolve_api_key, resolve_base_url
from .images import is_data_uri, is_image_url, is_pdf
from .ratelimit import Permit, RateLimits, _AnswerSizes

__all__ = [
    "IMAGE_COLUMNS",
    "OUTPUT_COLUMNS",
    "ClusterRateLimits",
    "caption_dataset",
    "cluster_rate_limits",
]

#: The image columns detected, in order of preference: raw bytes
#: (``read_binary_files``), a decoded array (``read_images``), a local path, a URL.
IMAGE_COLUMNS: Final = ("bytes", "image", "path", "url")
#: The columns :func:`caption_dataset` adds, with their Arrow types.
OUTPUT_COLUMNS: Final = {
    "row_key": pa.string(),
    "caption": pa.string(),
    "error": pa.string(),
    "attempts": pa.int64(),
    "prompt_tokens": pa.int64(),
    "completion_tokens": pa.int64(),
    "backend": pa.string(),
}
_CLIENT_OPTIONS: Final = frozenset(
    {"timeout", "max_retries", "retry_initial_delay", "retry_max_delay", "default_headers"}
)
_LIMITER_NAMESPACE: Final = "siliconvision"
ResumeFrom: TypeAlias = "str | os.PathLike[str] | Sequence[str | os.PathLike[str]]"
# Ray 2.59 moved the actor pool's size and per-actor concurrency into ActorPoolStrategy
# (``concurrency=`` and ``max_concurrency=`` still work there, with warnings).
_RAY_NEW_POOL_ARGS: Final = (
    "max_concurrent_calls_per_actor" in inspect.signature(ActorPoolStrategy.__init__).parameters
)


# --------------------------------------------------------------------------- the limiter


class _LimiterActor:
    """A :class:`RateLimits` served to the whole cluster (never blocks: it hands out
    start times, and each worker sleeps on its own)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._limits = RateLimits(**config)

    def config(self) -> dict[str, Any]:
        return self._limits.config()

    def reserve(self, tokens: float) -> tuple[int | None, float]:
        grant = self._limits.try_reserve(tokens)
        return grant.id, grant.wait

    def settle(self, grant_id: int, tokens: float | None) -> None:
        self._limits.settle(grant_id, tokens)

    def rate_limited(self, message: str) -> None:
        self._limits.rate_limited(message)

    def stats(self) -> dict[str, Any]:
        requests, tokens = self._limits.usage()
        return {
            "requests_in_window": requests,
            "tokens_in_window": tokens,
            "rate_limited": self._limits.rate_limited_count,
        }


class ClusterRateLimits:
    """A stand-in for one :class:`~siliconvision.RateLimits` served by a named Ray actor:
    pass it as ``rate_limits`` to a :class:`~siliconvision.SiliconVisionClient` in any
    task or actor of the cluster, and every request of every worker shares the budget.
    It pickles as the actor's handle (get one from :func:`cluster_rate_limits`).

    >>> limits = cluster_rate_limits(RateLimits(rpm=1000, tpm=80_000))  # doctest: +SKIP
    >>> client = SiliconVisionClient(rate_limits=limits)  # in a Ray task  # doctest: +SKIP
    """

    def __init__(self, actor: Any, completion_tokens: int) -> None:
        self.actor = actor
        self.completion_tokens = completion_tokens
        self._answers = _AnswerSizes(completion_tokens)  # learnt here, from this worker's

    def __reduce__(self) -> tuple[Any, ...]:
        return (ClusterRateLimits, (self.actor, self.completion_tokens))

    def completion_estimate(self, max_tokens: int | None = None) -> int:
        return self._answers.estimate(max_tokens)

    def __repr__(self) -> str:
        return f"ClusterRateLimits({self.actor!r})"

    def acquire(self, tokens: float) -> Permit:
        while True:
            grant_id, wait = ray.get(self.actor.reserve.remote(tokens))
            if wait > 0:
                time.sleep(wait)
            if grant_id is not None:
                return Permit(self, grant_id)

    async def aacquire(self, tokens: float) -> Permit:
        while True:
            grant_id, wait = await self.actor.reserve.remote(tokens)
            if wait > 0:
                await asyncio.sleep(wait)
            if grant_id is not None:
                return Permit(self, grant_id)

    def settle(self, grant_id: int, tokens: float | None, completion: int | None = None) -> None:
        if completion is not None:
            self._answers.observe(completion)
        self.actor.settle.remote(grant_id, tokens)  # no need to wait for it

    def rate_limited(self, message: str = "") -> None:
        self.actor.rate_limited.remote(message)

    def stats(self) -> dict[str, Any]:
        """What the actor counts now: requests and tokens in the window, 429s reported."""
        result: dict[str, Any] = ray.get(self.actor.stats.remote())
        return result


def cluster_rate_limits(rate_limits: RateLimits, *, name: str) -> ClusterRateLimits:
    """The named actor serving ``rate_limits`` to the cluster (started if needed).

    Every caller that passes the same ``name`` (in the ``"siliconvision"`` namespace)
    shares one budget; an actor of that name running with other limits is an error.
    The actor lives as long as the driver that started it.
    """
    if not isinstance(rate_limits, RateLimits):
        raise TypeError(f"rate_limits must be a RateLimits, got {type(rate_limits).__name__}")
    remote: Any = ray.remote(_LimiterActor).options(
        name=name,
        namespace=_LIMITER_NAMESPACE,
        get_if_exists=True,
        num_cpus=0.05,  # a fraction: it must never take a CPU the read tasks need
        max_restarts=3,
        max_task_retries=3,
    )
    actor: Any = remote.remote(rate_limits.config())
    running: dict[str, Any] = ray.get(actor.config.remote())
    if running != rate_limits.config():
        raise ValueError(
            f"a rate limiter named {name!r} already runs with {RateLimits(**running)!r}, "
            f"not {rate_limits!r}: share the same limits, or give another name"
        )
    return ClusterRateLimits(actor, rate_limits.completion_tokens)


def _limiter_name(base_url: str, model: str, api_key: SecretStr) -> str:
    """One limiter per account (key), endpoint and model: what SiliconCloud limits."""
    digest = hashlib.sha256(
        "\0".join([base_url, model, api_key.get_secret_value()]).encode("utf-8")
    ).hexdigest()
    return f"siliconvision-rate-limits-{digest[:20]}"


# --------------------------------------------------------------------------- the workers


@dataclass(frozen=True)
class _Settings:
    job: CaptionJob
    base_url: str
    api_key: Any  # an ObjectRef of the SecretStr: the key is not in the dataset's plan
    client_options: Mapping[str, Any]
    column: str
    kind: str  # one of IMAGE_COLUMNS, or "auto": by the values' types
    label_column: str | None
    keep_image: bool
    requests_per_worker: int
    limiter: ClusterRateLimits | None
    done: Any  # an ObjectRef of the frozenset of done row keys, or None


class _Unreadable:
    """An image that cannot be made into an :class:`ImageItem`: raises when read, so that
    the caption engine records the failure like any other."""

    def __init__(self, label: str, exc: BaseException) -> None:
        self.label = label
        self._exc = exc

    def __call__(self) -> ImageItem:
        raise self._exc


_SKIP: Final = object()


class _CaptionWorker:
    """The actor of :func:`caption_dataset`: one client, a thread per request in flight."""

    def __init__(self, settings: _Settings) -> None:
        self._settings = settings
        api_key: SecretStr = ray.get(settings.api_key)
        self._client = SiliconVisionClient(
            api_key=api_key,
            base_url=settings.base_url,
            model=settings.job.model,
            rate_limits=settings.limiter,
            **settings.client_options,
        )
        self._done: frozenset[str] = (
            ray.get(settings.done) if settings.done is not None else frozenset()
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(
            settings.requests_per_worker, thread_name_prefix="siliconvision-ray"
        )
        _ = self._client.openai  # the SDK loads now, not in the first batch

    def __call__(self, table: pa.Table) -> pa.Table:
        settings = self._settings
        values = _column_values(table, settings.column)
        labels = (
            [str(v) for v in table.column(settings.label_column).to_pylist()]
            if settings.label_column is not None
            else None
        )
        tasks = [
            self._pool.submit(self._one, value, labels[i] if labels else f"<row {i}>")
            for i, value in enumerate(values)
        ]
        results = [task.result() for task in tasks]
        keep = [r is not _SKIP for r in results]
        records: list[CaptionRecord] = [r for r in results if isinstance(r, CaptionRecord)]
        if not all(keep):
            table = table.filter(pa.array(keep, type=pa.bool_()))
        if not settings.keep_image and _is_heavy(table.schema.field(settings.column).type):
            table = table.drop_columns([settings.column])
        columns = {
            "row_key": [r.key for r in records],
            "caption": [r.caption for r in records],
            "error": [r.error for r in records],
            "attempts": [r.attempts for r in records],
            "prompt_tokens": [r.prompt_tokens for r in records],
            "completion_tokens": [r.completion_tokens for r in records],
            "backend": [r.backend for r in records],
        }
        for name, data in columns.items():
            if name in table.column_names:  # (an input column of the same name is replaced)
                table = table.drop_columns([name])
            table = table.append_column(name, pa.array(data, type=OUTPUT_COLUMNS[name]))
        return table

    def _one(self, value: Any, label: str) -> CaptionRecord | object:
        job = self._settings.job
        try:
            item = _image_item(value, self._settings.kind, label)
        except Exception as exc:
            return caption_item(self._client, _Unreadable(label, exc), job)
        if self._done and job.key(item.identity) in self._done:
            return _SKIP
        return caption_item(self._client, item, job)


def _is_heavy(column_type: pa.DataType) -> bool:
    """Raw bytes or a decoded image (a tensor column): what output rows do not carry."""
    return bool(
        pa.types.is_binary(column_type)
        or pa.types.is_large_binary(column_type)
        or isinstance(column_type, pa.ExtensionType)
    )


def _column_values(table: pa.Table, column: str) -> list[Any]:
    """The column's values as Python objects; decoded images as numpy arrays."""
    chunked = table.column(column)
    if isinstance(chunked.type, pa.ExtensionType):  # Ray's tensor columns (read_images)
        array = BlockAccessor.for_block(table.select([column])).to_numpy(column)
        return list(array)
    return list(chunked.to_pylist())


def _image_item(value: Any, kind: str, label: str) -> ImageItem:
    from .errors import ImageInputError

    if value is None:
        raise ImageInputError(label, "the row has no image (null)")
    if kind == "auto":
        kind = _kind_of(value)
    if kind == "bytes":
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise ImageInputError(label, f"expected bytes, got {type(value).__name__}")
        return _one_image(ImageItem.from_bytes(value, label))
    if kind == "path":
        if not isinstance(value, (str, os.PathLike)):
            raise ImageInputError(label, f"expected a file path, got {type(value).__name__}")
        return _one_image(ImageItem.from_path(value))
    if kind == "url":
        if not isinstance(value, str) or not (is_image_url(value) or is_data_uri(value)):
            raise ImageInputError(
                label,
                "not an http(s) URL or a data URI (URLs are passed on, never read as files; "
                "put local files in a 'path' column)",
            )
        return ImageItem(label, value, image_identity(value))
    return _array_item(value, label)


def _one_image(item: ImageItem) -> ImageItem:
    """A row is one image: a PDF (told by its bytes) is refused, by name."""
    from .errors import ImageInputError

    if isinstance(item.source, (bytes, bytearray, memoryview)) and is_pdf(item.source):
        raise ImageInputError(
            item.label,
            "a PDF document: caption_dataset captions one image per row (its output has "
            "a row per input row); make a row per page first (siliconvision.images."
            "prepare_pdf renders them), or caption PDFs with `siliconvision caption` or "
            "caption_images, which write one record per page",
        )
    return item


def _kind_of(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, np.ndarray):
        return "image"
    if isinstance(value, str):
        return "url" if is_image_url(value) or is_data_uri(value) else "path"
    if isinstance(value, os.PathLike):
        return "path"
    return "image"  # whatever it is: the array check names it


def _array_item(value: Any, label: str) -> ImageItem:
    """A decoded image (``read_images``): an ``H x W`` or ``H x W x 1/3/4`` uint8 array."""
    from PIL import Image

    from .errors import ImageInputError

    if not isinstance(value, np.ndarray):
        raise ImageInputError(label, f"expected an image array, got {type(value).__name__}")
    array = value[:, :, 0] if value.ndim == 3 and value.shape[2] == 1 else value
    if array.dtype != np.uint8 or not (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    ):
        raise ImageInputError(
            label,
            f"an image array must be uint8 HxW or HxWx3/4, got {array.dtype} {array.shape}",
        )
    array = np.ascontiguousarray(array)
    header = f"ndarray {array.dtype} {array.shape}\0".encode()
    identity = image_identity(header + array.tobytes())
    return ImageItem(
        f"{label} ({array.shape[1]}x{array.shape[0]} array)", Image.fromarray(array), identity
    )


# --------------------------------------------------------------------------- the driver


def _detect_column(ds: Dataset, image_column: str | None) -> tuple[str, str]:
    schema = ds.schema()
    names = list(schema.names) if schema is not None else []
    if image_column is not None:
        if image_column not in names:
            raise ValueError(f"image_column {image_column!r} is not a column; columns: {names}")
        return image_column, image_column if image_column in IMAGE_COLUMNS else "auto"
    for name in IMAGE_COLUMNS:
        if name in names:
            return name, name
    raise ValueError(
        f"no image column: expected one of {list(IMAGE_COLUMNS)} (or pass image_column=); "
        f"columns: {names}"
    )


def _done_keys(resume_from: ResumeFrom, backend: str) -> frozenset[str]:
    """The ``row_key`` of every row of earlier outputs captioned without an error by the
    same backend (read on the driver: three columns of Parquet files, no Ray job)."""
    import pyarrow.dataset

    paths = [resume_from] if isinstance(resume_from, (str, os.PathLike)) else list(resume_from)
    sources = [os.fspath(p) for p in paths]
    for source in sources:
        if "://" not in source and not Path(source).exists():
            raise FileNotFoundError(f"resume_from: no such directory or file: {source!r}")
    done: set[str] = set()
    earlier = pyarrow.dataset.dataset(
        [pyarrow.dataset.dataset(source, format="parquet") for source in sources]
    )
    for batch in earlier.to_batches(columns=["row_key", "error", "backend"]):
        for key, error, row_backend in zip(
            batch.column("row_key").to_pylist(),
            batch.column("error").to_pylist(),
            batch.column("backend").to_pylist(),
            strict=True,
        ):
            if key is not None and error is None and row_backend == backend:
                done.add(key)
    return frozenset(done)


def _check_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def caption_dataset(
    ds: Dataset,
    *,
    model: str,
    prompt: str | None = None,
    schema: Any = None,
    image_column: str | None = None,
    detail: Detail | None = None,
    rate_limits: RateLimits | None = None,
    concurrency: int = 2,
    max_attempts: int = 3,
    api_key: str | SecretStr | None = None,
    base_url: str | None = None,
    resume_from: ResumeFrom | None = None,
    keep_image: bool = False,
    requests_per_worker: int = 8,
    batch_size: int = 16,
    num_cpus: float = 0.25,
    client_options: Mapping[str, Any] | None = None,
    limiter_name: str | None = None,
) -> Dataset:
    """Caption (or extract records from) every image of ``ds``; a lazy dataset of results.

    Input rows hold an image as ``bytes`` (``ray.data.read_binary_files(...,
    include_paths=True)``), a decoded ``image`` array (``ray.data.read_images``), a
    local ``path`` readable on the workers (read as every file is read, with the core's
    checks: the dataset is the program's choice, so no ``allowed_dirs``), or an http(s)
    ``url`` (passed on as a URL, never fetched); ``image_column`` picks the column, else
    the first of :data:`IMAGE_COLUMNS` present. With another column name the values'
    types decide (bytes, array, http(s)/data URL, else a path).

    Output rows keep the input columns (but a column of raw bytes or decoded images,
    unless ``keep_image``; paths and URLs stay) and add
    :data:`OUTPUT_COLUMNS`: ``row_key`` (:func:`~siliconvision.captions.caption_key` of
    the image bytes or URL, model, prompt, detail and schema), ``caption`` (the text,
    or with ``schema``, a pydantic model or a JSON schema, the validated record's JSON
    text), ``error`` (``None``, or why the row failed, never with base64 in it),
    ``attempts``, ``prompt_tokens``, ``completion_tokens`` and ``backend`` (where the
    answers came from: SiliconCloud, the emulator, or the base URL).

    - ``concurrency`` actors, each asking for ``num_cpus`` (a fraction: actors holding
      whole CPUs starve the read tasks), each with ``requests_per_worker`` requests in
      flight over batches of ``batch_size`` rows;
    - ``rate_limits``: one budget for every worker, served by a named actor
      (:func:`cluster_rate_limits`, named after the account, endpoint and model unless
      ``limiter_name``);
    - ``max_attempts`` requests per row on 429, 5xx, connection errors, time-outs and
      answers off the schema; ``client_options``: ``timeout``, ``max_retries``,
      ``retry_initial_delay``, ``retry_max_delay``, ``default_headers`` of the clients;
    - ``resume_from``: earlier outputs (``write_parquet`` directories) whose rows without
      an error (from the same backend) are neither sent nor written again.

    Raises before any request: no API key (``api_key``, else ``SILICONFLOW_API_KEY``),
    a model that does not take images, a bad setting (named), no image column, a
    missing ``resume_from``. The key reaches the workers through Ray's object store,
    not the dataset's plan.
    """
    _check_int("concurrency", concurrency)
    _check_int("requests_per_worker", requests_per_worker)
    _check_int("batch_size", batch_size)
    _check_int("max_attempts", max_attempts)
    if isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) or num_cpus <= 0:
        raise ValueError(f"num_cpus must be a number > 0 (a fraction of a CPU), got {num_cpus!r}")
    if rate_limits is not None and not isinstance(rate_limits, RateLimits):
        raise TypeError(f"rate_limits must be a RateLimits, got {type(rate_limits).__name__}")
    options = dict(client_options or {})
    unknown = sorted(set(options) - _CLIENT_OPTIONS)
    if unknown:
        raise ValueError(
            f"client_options {unknown} not supported; supported: {sorted(_CLIENT_OPTIONS)}"
        )
    key = resolve_api_key(api_key)
    if key is None:
        from ._sdk import MissingAPIKeyError

        raise MissingAPIKeyError(
            "no SiliconCloud API key: pass api_key=... or set SILICONFLOW_API_KEY "
            "(or SILICONCLOUD_API_KEY); for offline use, pass the base_url and api_key "
            "of a siliconvision.testing.LocalSiliconCloud"
        )
    url = resolve_base_url(base_url)
    driver_client = SiliconVisionClient(api_key=key, base_url=url, model=model, **options)
    job = caption_job(
        driver_client,
        prompt=prompt,
        model=model,
        detail=detail,
        schema=schema,
        max_attempts=max_attempts,
        backend=backend_label(url),
    )
    column, kind = _detect_column(ds, image_column)
    names = list(ds.schema().names)
    label_column = "path" if "path" in names and column != "path" else None
    done = _done_keys(resume_from, job.backend) if resume_from is not None else None
    limiter = None
    if rate_limits is not None:
        name = limiter_name or _limiter_name(url, job.model, key)
        limiter = cluster_rate_limits(rate_limits, name=name)
    settings = _Settings(
        job=job,
        base_url=url,
        api_key=ray.put(key),
        client_options=options,
        column=column,
        kind=kind,
        label_column=label_column,
        keep_image=keep_image,
        requests_per_worker=requests_per_worker,
        limiter=limiter,
        done=ray.put(done) if done else None,
    )
    # Two batches at once per actor: one batch's slowest request never idles the others.
    pool: dict[str, Any] = {"concurrency": concurrency, "max_concurrency": 2}
    if _RAY_NEW_POOL_ARGS:
        # By name: the installed Ray's signature decides (older ones lack the argument).
        new_args: dict[str, Any] = {"size": concurrency, "max_concurrent_calls_per_actor": 2}
        pool = {"compute": ActorPoolStrategy(**new_args)}
    return ds.map_batches(
        _CaptionWorker,
        fn_constructor_kwargs={"settings": settings},
        batch_size=batch_size,
        batch_format="pyarrow",
        num_cpus=num_cpus,
        **pool,
    )
