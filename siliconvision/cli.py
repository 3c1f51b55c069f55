"""The ``siliconvision`` command line.

    siliconvision ask IMAGE_OR_PDF... -q QUESTION [--model M] [--detail low|high|auto]
                      [--image-order auto|images_first|preserve] [--stream] [--pages 1-3,5]
    siliconvision caption DIR_OR_FILES... --out FILE.jsonl [--model M] [--detail D]
                      [--pages 1-3,5] [--concurrency N] [--prompt TEXT] [--max-attempts N]
                      [--rpm N] [--tpm N] [--emulator]
                      [--max-retries N] [--retry-delay S] [--retry-max-delay S]
    siliconvision emulator [--port N] [--host 127.0.0.1]
    siliconvision models [--remote]

``ask`` and ``caption`` talk to SiliconCloud when ``SILICONFLOW_API_KEY`` (or
``SILICONCLOUD_API_KEY``) is set, at ``SILICONFLOW_BASE_URL`` if set; with
``--emulator`` they use the built-in local emulator instead (its answers describe
what it received, not real model output). Without a key, ``ask`` falls back to the
emulator and says so on stderr; ``caption`` refuses (exit 2) unless ``--emulator`` is
given, so emulator output is never written into a captions file as if it were real.
Caption records say which backend wrote them, and a rerun skips an image only when
a record of the same backend, model, prompt, detail and image bytes is in ``--out``.

PDFs (told by their bytes) are sent as their pages' images, each page rendered once at
the size the model's server keeps: ``ask`` sends every page (or ``--pages``) in one
request; ``caption`` writes one record per page (``page`` in the record), also for the
PDFs in the directories it searches, and resumes page by page.

Exit codes: 0 success; 1 an API or network error (or, for ``caption``, at least one
image failed); 2 bad input (missing image, not an image, bad option); 130 interrupted.

Example:
    >>> main(["ask", "examples/images/red_circle.png", "-q", "What shape?"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import openai

from . import __version__
from .captions import (
    DEFAULT_CAPTION_PROMPT,
    EMULATOR_BACKEND,
    CaptionJob,
    CaptionRecord,
    caption_images,
    caption_job,
    image_identity,
    iter_image_files,
    load_done,
    read_image_file,
)
from .catalog import CATALOG, DETAILS, IMAGE_ORDERS, Detail, ImageOrder, ModelSpec, get_model_spec
from .client import (
    API_KEY_ENV_VARS,
    BASE_URL_ENV_VAR,
    DEFAULT_MODEL,
    DEFAULT_RETRY_INITIAL_DELAY,
    DEFAULT_RETRY_MAX_DELAY,
    MissingAPIKeyError,
    SiliconVisionClient,
    resolve_api_key,
)
from .content import Pdf
from .errors import ContentError, ImageInputError, SiliconVisionError
from .images import is_data_uri, is_image_url, is_pdf
from .images._pdf import normalize_pages, pdf_page_count, select_pages
from .images._sources import LocalFile
from .ratelimit import RateLimits
from .wire import ParameterError

__all__ = ["main"]

PROG = "siliconvision"


class _InputError(Exception):
    """Bad input found by the CLI itself (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for whole numbers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _pages(text: str) -> tuple[int, ...]:
    """``--pages``: page numbers and ranges, ``1-3,5`` (1 is the first page)."""
    pages: list[int] = []
    for piece in text.replace(" ", "").split(","):
        first, dash, last = piece.partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a page list such as 1-3,5 (1 is the first page)"
            ) from None
        if low < 1 or high < low:
            raise argparse.ArgumentTypeError(
                f"{piece!r}: pages count from 1, and a range goes up (1-3)"
            )
        if high - low >= 100_000:
            raise argparse.ArgumentTypeError(f"{piece!r}: too many pages")
        pages.extend(range(low, high + 1))
    try:
        selected = normalize_pages(pages)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert selected is not None
    return selected


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


def _build_parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="SiliconCloud vision-language models from the command line. Without "
        "SILICONFLOW_API_KEY, `ask` and `caption` run against a built-in local emulator.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def add_model_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--model", default=DEFAULT_MODEL, help=f"model id (default {DEFAULT_MODEL})"
        )
        sub.add_argument(
            "--detail",
            choices=DETAILS,
            default=None,
            help="image detail (default: the model's catalog default; low and auto both "
            "mean low-resolution mode on SiliconCloud)",
        )

    pages_help = (
        "the pages of each PDF to send, e.g. 1-3,5 (1 is the first page; default: every "
        "page, up to 100)"
    )
    ask = commands.add_parser(
        "ask",
        help="ask a question about one or more images or PDFs",
        description="Ask one question about one or more images or PDFs (local paths or "
        "http(s) URLs); a PDF is sent as its pages' images.",
    )
    ask.add_argument(
        "images", nargs="+", metavar="IMAGE_OR_PDF", help="image or PDF path, or http(s) URL"
    )
    ask.add_argument("--pages", type=_pages, default=None, help=pages_help)
    ask.add_argument("-q", "--question", required=True, help="the question to ask")
    add_model_options(ask)
    ask.add_argument(
        "--image-order",
        choices=IMAGE_ORDERS,
        default="auto",
        help="where images go relative to the question (auto: the catalog decides; "
        "images first for InternVL)",
    )
    ask.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    ask.add_argument(
        "--emulator",
        action="store_true",
        help="use the built-in local emulator even when a key is set",
    )
    ask.add_argument("--max-tokens", type=_positive_int, default=None, help="answer length cap")
    ask.set_defaults(func=_cmd_ask)

    caption = commands.add_parser(
        "caption",
        help="caption many images into a JSONL file (resumable)",
        description="Caption images and PDF pages (directories are searched recursively, "
        "PDFs included) into a JSONL file, one line per image or page. Images and pages "
        "already captioned in --out with the same model, prompt, detail and backend (and "
        "the same bytes) are skipped, so rerunning the same command resumes an interrupted "
        "run and retries failed ones. Needs SILICONFLOW_API_KEY, or --emulator to try it "
        "offline.",
    )
    caption.add_argument("paths", nargs="+", metavar="DIR_OR_FILE")
    caption.add_argument("--out", required=True, type=Path, metavar="FILE.jsonl")
    add_model_options(caption)
    caption.add_argument("--pages", type=_pages, default=None, help=pages_help)
    caption.add_argument(
        "--concurrency", type=_positive_int, default=4, help="requests in flight (default 4)"
    )
    caption.add_argument("--prompt", default=DEFAULT_CAPTION_PROMPT, help="the caption prompt")
    caption.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=3,
        help="requests per image on rate limits and server errors (default 3)",
    )
    caption.add_argument(
        "--max-retries",
        type=_non_negative_int,
        default=2,
        help="retries of each request by the HTTP client on 429, 5xx and network errors "
        "(default 2)",
    )
    caption.add_argument(
        "--retry-delay",
        type=_seconds,
        default=DEFAULT_RETRY_INITIAL_DELAY,
        metavar="SECONDS",
        help=f"first backoff wait, doubled per retry (default {DEFAULT_RETRY_INITIAL_DELAY:g})",
    )
    caption.add_argument(
        "--retry-max-delay",
        type=_seconds,
        default=DEFAULT_RETRY_MAX_DELAY,
        metavar="SECONDS",
        help=f"longest backoff wait (default {DEFAULT_RETRY_MAX_DELAY:g})",
    )
    caption.add_argument(
        "--rpm",
        type=_positive_int,
        default=None,
        help="the account's requests-per-minute limit for this model: requests are paced "
        "to stay within it",
    )
    caption.add_argument(
        "--tpm",
        type=_positive_int,
        default=None,
        help="the account's tokens-per-minute limit for this model (prompt and answer "
        "tokens, estimated before each request and corrected after)",
    )
    caption.add_argument(
        "--emulator",
        action="store_true",
        help="caption with the built-in local emulator (offline; its captions describe the "
        "image received, not real model output, and its records never count as done for "
        "SiliconCloud)",
    )
    caption.add_argument(
        "--no-recursive", action="store_true", help="do not descend into sub-directories"
    )
    caption.set_defaults(func=_cmd_caption)

    emulator = commands.add_parser(
        "emulator",
        help="run the local SiliconCloud emulator in the foreground",
        description="Run LocalSiliconCloud until Ctrl-C and print how to point clients at it.",
    )
    emulator.add_argument("--port", type=_port, default=0, help="port (default: a free one)")
    emulator.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    emulator.set_defaults(func=_cmd_emulator)

    models = commands.add_parser(
        "models",
        help="list the model catalog",
        description="The model catalog: what each model id can do. --remote also asks the "
        "server which ids it serves.",
    )
    models.add_argument(
        "--remote", action="store_true", help="also ask the server's /v1/models (needs a key)"
    )
    models.set_defaults(func=_cmd_models)
    return parser


# --------------------------------------------------------------------------- output


def _out() -> IO[str]:
    return sys.stdout


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- clients

_EMULATOR_NOTICE = (
    "{prog}: no {keys} set: using the built-in local emulator (LocalSiliconCloud on "
    "127.0.0.1). Its answers describe what it received, not real model output. "
    "Set SILICONFLOW_API_KEY to use SiliconCloud."
)
_EMULATOR_ASKED = (
    "{prog}: --emulator: using the built-in local emulator (LocalSiliconCloud on "
    "127.0.0.1). Its answers describe what it received, not real model output."
)


@contextlib.contextmanager
def _connect(
    *,
    model: str,
    detail: Detail | None = None,
    image_order: ImageOrder = "auto",
    emulator: bool = False,
    **settings: Any,
) -> Iterator[SiliconVisionClient]:
    """A client for SiliconCloud if a key is set (and ``emulator`` is not asked for),
    else for a local emulator run for the duration of the ``with`` block. ``settings``:
    more client settings (``max_retries``, ``retry_initial_delay``, ``retry_max_delay``,
    ``rate_limits``)."""
    settings = {"model": model, "detail": detail, "image_order": image_order, **settings}
    if not emulator and resolve_api_key() is not None:
        with SiliconVisionClient(**settings) as client:
            yield client
        return
    if emulator:
        _err(_EMULATOR_ASKED.format(prog=PROG))
    else:
        _err(_EMULATOR_NOTICE.format(prog=PROG, keys=" or ".join(API_KEY_ENV_VARS)))
    from .testing import LocalSiliconCloud

    with (
        LocalSiliconCloud() as emu,
        SiliconVisionClient(api_key=emu.api_key, base_url=emu.base_url, **settings) as client,
    ):
        yield client


# --------------------------------------------------------------------------- ask


def _cmd_ask(args: argparse.Namespace) -> int:
    images: list[str] = args.images
    for image in images:
        lowered = image.lower()
        if lowered.startswith("file:"):
            raise _InputError(f"image {image}: give the file's path, not a file: URL")
        if not (is_image_url(image) or is_data_uri(image)) and not Path(image).exists():
            raise _InputError(f"image {image}: file does not exist")
    if not args.question.strip():
        raise _InputError("the question (-q) is empty")
    params: dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    sources: list[Any] = list(images)
    if args.pages is not None:
        sources = [_with_pages(image, args.pages) for image in images]
        if not any(isinstance(source, Pdf) for source in sources):
            raise _InputError("--pages selects pages of PDFs, and no PDF was given")
    out = _out()
    with _connect(
        model=args.model, detail=args.detail, image_order=args.image_order, emulator=args.emulator
    ) as client:
        messages = client.ask_messages(sources, args.question)
        if not args.stream:
            result = client.chat(messages, **params)
            out.write(result.content.rstrip("\n") + "\n")
            out.flush()
            return 0
        with client.stream(messages, **params) as stream:
            ended_with_newline = True
            for delta in stream:
                if delta.content:
                    out.write(delta.content)
                    out.flush()
                    ended_with_newline = delta.content.endswith("\n")
            if not ended_with_newline:
                out.write("\n")
            out.flush()
    return 0


def _is_pdf_file(path: str | os.PathLike[str]) -> bool:
    """Whether a local file is a PDF, told by its first bytes (read under the file policy;
    a file that cannot be read is left to be refused where it is sent)."""
    try:
        return is_pdf(LocalFile(os.fspath(path)).head(5))
    except ImageInputError:
        return False


def _with_pages(image: str, pages: tuple[int, ...]) -> Any:
    """``ask``'s ``--pages``: a local PDF as a :class:`~siliconvision.Pdf` of those pages."""
    if is_image_url(image) or is_data_uri(image) or not _is_pdf_file(image):
        return image
    return Pdf(Path(image), pages=pages)


# --------------------------------------------------------------------------- caption


class _Progress:
    """Progress on stderr: a ``\\r`` bar on a terminal, else a line every ~10%."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total = total
        self.stream = stream
        self.done = 0
        self.ok = 0
        self.failed = 0
        self.tty = _isatty(stream)
        self._step = max(1, math.ceil(total / 10))
        self._width = len(str(total))

    def line(self) -> str:
        return (
            f"[{self.done:>{self._width}}/{self.total}] captioned {self.ok}, failed {self.failed}"
        )

    def start(self) -> None:
        if self.tty and self.total:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def update(self, record: CaptionRecord) -> None:
        self.done += 1
        if record.ok:
            self.ok += 1
        else:
            self.failed += 1
        if self.tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()
        elif self.done % self._step == 0 or self.done == self.total:
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.total:
            self.stream.write("\n")
            self.stream.flush()


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@dataclass(frozen=True)
class _Plan:
    """What a caption run has to do: the files to read, the records they will make,
    the records already in ``--out`` (skipped) and the keys of those."""

    todo: list[Path]
    records: int
    skipped: int
    done: frozenset[str]
    pdfs: int


def _plan(files: Sequence[Path], job: CaptionJob, out_path: Path) -> _Plan:
    """The files with something left to caption: without a record of the same
    :func:`~siliconvision.captions.caption_key` and backend in ``out_path``, and for a
    PDF (told by its bytes), the pages without one. An image is read and hashed only
    when there are records to compare with; a PDF is read, hashed and its pages
    counted. A file that cannot be read is left to the captioning, which records why."""
    done = frozenset(load_done(out_path, backend=job.backend))
    todo: list[Path] = []
    records = skipped = pdfs = 0
    for file in files:
        if _is_pdf_file(file):
            pdfs += 1
            try:
                data = read_image_file(file)
                identity = image_identity(data)
                count = pdf_page_count(data, str(file))
                wanted = select_pages(count, job.pages, job.pdf, str(file))
            except ImageInputError:  # recorded as one failure when it is captioned
                todo.append(file)
                records += 1
                continue
            left = sum(1 for page in wanted if job.key(identity, page) not in done)
            skipped += len(wanted) - left
            if left:
                todo.append(file)
                records += left
            continue
        key = None
        if done:
            try:
                key = job.key(image_identity(read_image_file(file)))
            except ImageInputError:
                key = None
        if key is not None and key in done:
            skipped += 1
        else:
            todo.append(file)
            records += 1
    return _Plan(todo, records, skipped, done, pdfs)


def _open_for_append(path: Path) -> IO[str]:
    """Open the JSONL output for appending; a truncated last line (from an interrupted
    run) is ended first, so the next record starts on its own line."""
    if path.is_dir():
        raise _InputError(f"--out {str(path)!r} is a directory; give a .jsonl file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    needs_newline = False
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as existing:
            existing.seek(-1, os.SEEK_END)
            needs_newline = existing.read(1) != b"\n"
    file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - returned to the caller
    if needs_newline:
        file.write("\n")
        file.flush()
    return file


def _limits_text(limits: RateLimits) -> str:
    parts = [(limits.rpm, "RPM"), (limits.tpm, "TPM")]
    return " and ".join(f"{value:,.0f} {name}" for value, name in parts if value)


def _cmd_caption(args: argparse.Namespace) -> int:
    if not args.prompt.strip():
        raise _InputError("the caption prompt (--prompt) is empty")
    if not get_model_spec(args.model).vision:
        raise _InputError(
            f"model {args.model!r} does not take images; caption with a vision model "
            f"(see `{PROG} models`)"
        )
    try:
        files = iter_image_files(args.paths, recursive=not args.no_recursive, pdfs=True)
    except FileNotFoundError as exc:
        raise _InputError(str(exc)) from None
    if not files:
        raise _InputError(f"no images or PDFs found in {', '.join(args.paths)}")
    if not args.emulator and resolve_api_key() is None:
        raise _InputError(
            f"no {' or '.join(API_KEY_ENV_VARS)} set: caption needs SiliconCloud; set "
            f"{API_KEY_ENV_VARS[0]}, or pass --emulator to caption with the built-in local "
            "emulator (offline; its captions describe the image received, not real model "
            "output)"
        )
    out_path: Path = args.out
    if out_path.is_dir():
        raise _InputError(f"--out {str(out_path)!r} is a directory; give a .jsonl file path")
    rate_limits = None
    if args.rpm is not None or args.tpm is not None:
        rate_limits = RateLimits(rpm=args.rpm, tpm=args.tpm)
    with _connect(
        model=args.model,
        detail=args.detail,
        emulator=args.emulator,
        max_retries=args.max_retries,
        retry_initial_delay=args.retry_delay,
        retry_max_delay=args.retry_max_delay,
        rate_limits=rate_limits,
    ) as client:
        job = caption_job(
            client,
            prompt=args.prompt,
            max_attempts=args.max_attempts,
            backend=EMULATOR_BACKEND if args.emulator else None,
            pages=args.pages,
        )
        return _caption_into(client, job, files, _plan(files, job, out_path), out_path, args)


def _caption_into(
    client: SiliconVisionClient,
    job: CaptionJob,
    files: Sequence[Path],
    plan: _Plan,
    out_path: Path,
    args: argparse.Namespace,
) -> int:
    skipped = plan.skipped
    what = "image(s) and PDF page(s)" if plan.pdfs else "image(s)"
    if not plan.todo:
        everything = f"{skipped} images and pages" if plan.pdfs else f"{len(files)} images"
        _err(f"all {everything} are already captioned in {out_path}; nothing to do")
        return 0
    limits = client.rate_limits
    _err(
        f"captioning {plan.records} {what} with {args.model}, concurrency {args.concurrency}"
        + (f", within {_limits_text(limits)}" if isinstance(limits, RateLimits) else "")
        + (f" ({skipped} already captioned in {out_path})" if skipped else "")
    )
    failures: list[CaptionRecord] = []
    progress = _Progress(plan.records, sys.stderr)
    with _open_for_append(out_path) as out:
        records = caption_images(
            client,
            plan.todo,
            prompt=job.prompt,
            concurrency=args.concurrency,
            max_attempts=job.max_attempts,
            backend=job.backend,
            pages=job.pages,
            done=plan.done,
        )
        progress.start()
        try:
            for record in records:
                out.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
                out.flush()
                progress.update(record)
                if not record.ok:
                    failures.append(record)
        except KeyboardInterrupt:
            progress.finish()
            _err(
                f"interrupted after {progress.done} of {plan.records} {what}; progress is "
                f"saved in {out_path}: rerun the same command to resume"
            )
            return 130
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()
        progress.finish()
    _err(
        f"done: {progress.ok} captioned, {progress.failed} failed"
        + (f", {skipped} skipped (already captioned)" if skipped else "")
        + f"; output: {out_path}"
    )
    for record in failures[:10]:
        page = f" page {record.page}" if record.page is not None else ""
        _err(f"  failed: {record.path}{page}: {record.error}")
    if len(failures) > 10:
        _err(f"  ... and {len(failures) - 10} more (see {out_path})")
    if failures:
        _err("rerun the same command to retry the failed image(s)")
        return 1
    return 0


# --------------------------------------------------------------------------- emulator


def _cmd_emulator(args: argparse.Namespace) -> int:
    from .testing import LocalSiliconCloud

    try:
        emu = LocalSiliconCloud(host=args.host, port=args.port)
        emu.start()
    except OSError as exc:
        _err(f"{PROG} emulator: error: cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        _err(
            f"{PROG} emulator: warning: listening on {args.host}, not only on this machine; "
            "it is a test double with a well-known key, not a service"
        )
    out = _out()
    try:
        print(f"LocalSiliconCloud (SiliconCloud emulator) listening on {emu.base_url}", file=out)
        print(f"API key: {emu.api_key}", file=out)
        print("Point clients at it (shell):", file=out)
        print(
            f"  export {BASE_URL_ENV_VAR}={emu.base_url} {API_KEY_ENV_VARS[0]}={emu.api_key}",
            file=out,
        )
        print(
            "or in Python: SiliconVisionClient(base_url=..., api_key=...) with the values "
            "above. Answers describe the images received, not real model output.",
            file=out,
        )
        print("Press Ctrl-C to stop.", file=out, flush=True)
        with _sigterm_as_interrupt():
            while True:
                time.sleep(0.5)
    except KeyboardInterrupt:
        _err("emulator stopped")
    finally:
        emu.stop()
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Stop on SIGTERM (``kill``, service managers) as on Ctrl-C: cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------- models


def _context(tokens: int) -> str:
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else str(tokens)


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _model_row(spec: ModelSpec) -> list[str]:
    return [
        spec.id,
        _yes(spec.vision),
        _yes(spec.video),
        _yes(spec.tools),
        "-" if spec.reasoning == "none" else spec.reasoning,
        spec.image_order if spec.vision else "-",
        _context(spec.context_window),
    ]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _cmd_models(args: argparse.Namespace) -> int:
    header = ["ID", "VISION", "VIDEO", "TOOLS", "REASONING", "IMAGE ORDER", "CONTEXT"]
    specs = list(CATALOG.values())
    rows = [_model_row(spec) for spec in specs]
    served: list[str] = []
    if args.remote:
        if resolve_api_key() is None:
            raise _InputError(
                f"models --remote asks the server and needs {API_KEY_ENV_VARS[0]} (or "
                f"{API_KEY_ENV_VARS[1]}); to try it offline, run `{PROG} emulator` and "
                "export the variables it prints"
            )
        with SiliconVisionClient() as client:
            served = client.list_models(sub_type=None)
        served_set = set(served)
        header.append("SERVED")
        for spec, row in zip(specs, rows, strict=True):
            row.append(_yes(spec.id in served_set))
    out = _out()
    print(_table(header, rows), file=out)
    if args.remote:
        unknown = sorted(set(served) - set(CATALOG))
        in_catalog = sum(1 for spec in specs if spec.id in set(served))
        print(
            f"\nThe server lists {len(set(served))} model(s); {in_catalog} of the "
            f"{len(specs)} catalogued ids are among them.",
            file=out,
        )
        if unknown:
            print(
                f"Served but not in the catalog ({len(unknown)}; used with safe defaults, "
                "see siliconvision.register_model):",
                file=out,
            )
            for model_id in unknown:
                print(f"  {model_id}", file=out)
        else:
            print("Every served id is in the catalog.", file=out)
    out.flush()
    return 0


# --------------------------------------------------------------------------- main

#: Bad input: exit code 2.
_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    _InputError,
    ImageInputError,
    ContentError,
    ParameterError,
    MissingAPIKeyError,
)


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    prefix = f"{PROG} {args.command}: error:"
    try:
        return func(args)
    except _INPUT_ERRORS as exc:
        _err(f"{prefix} {exc}")
        return 2
    except openai.APIStatusError as exc:
        _err(f"{prefix} {exc}")
        return 1
    except openai.APIConnectionError as exc:
        base_url = os.environ.get(BASE_URL_ENV_VAR) or "the server"
        _err(f"{prefix} cannot reach {base_url}: {exc}")
        return 1
    except (SiliconVisionError, openai.OpenAIError) as exc:
        _err(f"{prefix} {exc}")
        return 1
    except KeyboardInterrupt:
        _err(f"{PROG}: interrupted")
        return 130
    except BrokenPipeError:
        # e.g. `siliconvision ask ... | head -1`: stop quietly.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    >>> main(["models"])  # doctest: +SKIP
    0
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return _run(args.func, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
