"""A lazily built, config-keyed cache of core clients for the adapter's pydantic models.

The core :class:`~siliconvision.client.SiliconVisionClient` holds a secret and open
connections (it refuses to be pickled), so models keep it in a holder that copies
and pickles as empty. Async calls get one client per running event loop: an
``httpx`` connection pool must not outlive the loop that opened it (``asyncio.run``
twice with the same model would otherwise fail on a closed loop). Each per-loop
client is closed *by its loop* when the loop shuts down (``asyncio.run`` and
``asyncio.Runner`` finalise async generators before closing: a small sentinel
generator closes the client then), so no connection is left to be torn down later
from another loop.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Hashable
from typing import Any

from siliconvision.client import SiliconVisionClient

__all__ = ["ClientHolder"]


class ClientHolder:
    """Builds a client on first use; rebuilds it when the configuration key changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Hashable = None
        self._sync: SiliconVisionClient | None = None
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient]
        self._per_loop = weakref.WeakKeyDictionary()

    def _check_key(self, key: Hashable) -> None:
        if key != self._key:
            self._key = key
            self._sync = None
            self._per_loop = weakref.WeakKeyDictionary()

    def get(self, key: Hashable, factory: Callable[[], SiliconVisionClient]) -> SiliconVisionClient:
        """The client for synchronous calls."""
        with self._lock:
            self._check_key(key)
            if self._sync is None:
                self._sync = factory()
            return self._sync

    async def get_async(
        self, key: Hashable, factory: Callable[[], SiliconVisionClient]
    ) -> SiliconVisionClient:
        """The client for async calls on the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._check_key(key)
            entry = self._per_loop.get(loop)
            if entry is None:
                entry = _LoopClient(factory())
                self._per_loop[loop] = entry
                fresh = True
            else:
                fresh = False
        if fresh:
            await entry.start()
        return entry.client

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


class _LoopClient:
    """A client and the sentinel generator that closes it when its loop shuts down."""

    def __init__(self, client: SiliconVisionClient) -> None:
        self.client = client
        self._sentinel: AsyncGenerator[None, None] | None = None

    async def start(self) -> None:
        sentinel = self._closer()
        await sentinel.__anext__()  # registers with the loop's async-generator hooks
        self._sentinel = sentinel

    async def _closer(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self.client.aclose()
