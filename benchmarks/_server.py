"""``LocalSiliconCloud`` in a child process, driven with JSON lines over its stdin/stdout.

The emulator decodes every image it receives; running it in its own process keeps
that work (and its threads) off the benchmarked client's interpreter lock, so the
clients are timed, not the server. Its request log comes back as plain dicts
(:class:`RequestSummary`): body size, images as the server saw them, chunks sent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EmulatorProcess", "RequestSummary", "SeenImageSummary"]

_KNOBS = ("latency", "chunk_delay", "reply_chunks", "upload_mbit_per_s")


@dataclass(frozen=True)
class SeenImageSummary:
    """One image as the emulator decoded it."""

    width: int
    height: int
    format: str
    byte_size: int
    detail: str | None
    tokens: int


@dataclass(frozen=True)
class RequestSummary:
    """One logged request: what was uploaded and what was answered."""

    path: str
    model: str | None
    stream: bool
    status: int
    body_size: int
    chunks_sent: int
    images: tuple[SeenImageSummary, ...] = field(default=())
    upload_seconds: float = 0.0  # end of the request head to the last body byte
    received_at: float = 0.0  # the emulator's monotonic clock: only differences mean anything
    finished_at: float | None = None


def _summary(rec: Any) -> dict[str, Any]:
    return {
        "path": rec.path,
        "model": rec.model,
        "stream": rec.stream,
        "status": rec.status,
        "body_size": rec.body_size,
        "chunks_sent": rec.chunks_sent,
        "upload_seconds": rec.upload_seconds,
        "received_at": rec.received_at,
        "finished_at": rec.finished_at,
        "images": [
            {
                "width": i.width,
                "height": i.height,
                "format": i.format,
                "byte_size": i.byte_size,
                "detail": i.detail,
                "tokens": i.tokens,
            }
            for i in rec.images
        ],
    }


def _serve(knobs: dict[str, Any]) -> None:
    """The child: serve, answer JSON-line commands on stdin, reply on stdout."""
    from siliconvision.testing import LocalSiliconCloud

    out = sys.stdout
    emu = LocalSiliconCloud(**knobs).start()
    out.write(json.dumps({"base_url": emu.base_url, "api_key": emu.api_key}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            command, args = json.loads(line)
            if command == "stop":
                return
            try:
                if command == "set":
                    for name, value in args.items():
                        if name not in _KNOBS:
                            raise ValueError(f"unknown knob {name!r}")
                        setattr(emu, name, value)
                    result: Any = None
                elif command == "script":
                    emu.script_reply(**args)
                    result = None
                elif command == "clear":
                    emu.clear()
                    result = None
                elif command == "log":
                    result = [_summary(rec) for rec in emu.requests[args:]]
                elif command == "count":
                    result = len(emu.requests)
                elif command == "rate_limits":
                    from siliconvision.ratelimit import RateLimits

                    emu.rate_limits = None if args is None else RateLimits(**args)
                    result = None
                elif command == "rate_stats":
                    result = {
                        model: {**dataclasses.asdict(stats), "refused": stats.refused}
                        for model, stats in emu.rate_stats().items()
                    }
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception as exc:  # reported to the parent, which raises it
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            else:
                reply = {"ok": result}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        emu.stop()


class EmulatorProcess:
    """A started ``LocalSiliconCloud`` in a child process (use as a context manager).

    >>> with EmulatorProcess(latency=0.05) as server:  # doctest: +SKIP
    ...     client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key)
    ...     server.requests()[-1].body_size
    """

    def __init__(self, *, python: str | None = None, **knobs: Any) -> None:
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [python or sys.executable, "-m", "benchmarks._server", json.dumps(knobs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
            env=env,
        )
        hello = self._read()
        self.base_url: str = hello["base_url"]
        self.api_key: str = hello["api_key"]

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _call(self, command: str, args: Any = None) -> Any:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps([command, args]) + "\n")
        self._process.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"emulator: {reply['error']}")
        return reply["ok"]

    def set(self, **knobs: Any) -> None:
        """Change ``latency``, ``chunk_delay``, ``reply_chunks`` or ``upload_mbit_per_s``."""
        self._call("set", knobs)

    def script_reply(self, **kwargs: Any) -> None:
        """Queue a scripted reply (see ``LocalSiliconCloud.script_reply``)."""
        self._call("script", kwargs)

    def clear(self) -> None:
        """Forget the log and scripts (knobs are kept)."""
        self._call("clear")

    def rate_limits(self, config: dict[str, Any] | None) -> None:
        """Enforce ``RateLimits(**config)`` per model (``None``: no limits)."""
        self._call("rate_limits", config)

    def rate_stats(self) -> dict[str, dict[str, Any]]:
        """Per model, what the limits saw (``RateWindowStats`` as dicts, ``refused`` too)."""
        result: dict[str, dict[str, Any]] = self._call("rate_stats")
        return result

    def count(self) -> int:
        """How many API requests are in the log."""
        result: int = self._call("count")
        return result

    def requests(self, start: int = 0) -> list[RequestSummary]:
        """The log from index ``start`` on."""
        rows = self._call("log", start)
        return [
            RequestSummary(
                **{k: v for k, v in row.items() if k != "images"},
                images=tuple(SeenImageSummary(**i) for i in row["images"]),
            )
            for row in rows
        ]

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write(json.dumps(["stop", None]) + "\n")
                self._process.stdin.close()
                self._process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
