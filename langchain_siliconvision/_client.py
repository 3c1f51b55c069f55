"""A lazily built, config-keyed core client for the adapter's pydantic models.

The core :class:`~siliconvision.client.SiliconVisionClient` holds a secret and open
connections (it refuses to be pickled), so models keep it in a holder that copies
and pickles as empty. Event loops are the core client's business: it keeps one
async SDK client per running loop and closes it when that loop shuts down.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, cast

from pydantic import BaseModel, SecretStr

from siliconvision.client import SiliconVisionClient, resolve_api_key

__all__ = ["ClientHolder", "KeylessPickle", "allowed_dirs_list", "default_api_key"]


def default_api_key() -> SecretStr | None:
    """The key from the environment (``SILICONFLOW_API_KEY``...), or ``None``."""
    return resolve_api_key(None)


def allowed_dirs_list(value: Any) -> Any:
    """``allowed_dirs`` as a list of path strings (one path may be given alone)."""
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    if isinstance(value, Sequence):
        return [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
    return value


class KeylessPickle:
    """For a pydantic model with an ``api_key`` field (listed before ``BaseModel`` among
    its bases): its pickle never holds the key, and an unpickled copy reads the key from
    its own environment."""

    def __getstate__(self) -> dict[Any, Any]:
        state = cast(BaseModel, super()).__getstate__()
        fields = dict(state.get("__dict__") or {})
        if "api_key" in fields:
            fields["api_key"] = None
        return {**state, "__dict__": fields}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        cast(BaseModel, super()).__setstate__(state)
        if self.__dict__.get("api_key") is None:
            object.__setattr__(self, "api_key", default_api_key())


class ClientHolder:
    """Builds a client on first use; rebuilds it when the configuration key changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Hashable = None
        self._client: SiliconVisionClient | None = None

    def get(self, key: Hashable, factory: Callable[[], SiliconVisionClient]) -> SiliconVisionClient:
        """The client for ``key`` (sync and async calls alike)."""
        with self._lock:
            if self._client is None or key != self._key:
                self._key = key
                self._client = factory()
            return self._client

    def __copy__(self) -> ClientHolder:
        return ClientHolder()

    def __deepcopy__(self, memo: dict[int, Any]) -> ClientHolder:
        return ClientHolder()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def __repr__(self) -> str:
        return "ClientHolder()"
