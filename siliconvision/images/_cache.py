"""The LRU cache of prepared images, and the lookups in it."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final, TypeVar, cast

from ._results import EncodedImage, PreparedImage, PreparedPdf, page_label

__all__ = ["DEFAULT_CACHE", "ImageCache", "cached", "relabelled"]

_Result = TypeVar("_Result", PreparedImage, EncodedImage, PreparedPdf)
_Entry = PreparedImage | EncodedImage | PreparedPdf
_HASH_CHUNK: Final = 1 << 20


class ImageCache:
    """A bounded, thread-safe LRU cache of prepared images.

    Bounded by entry count and by the total size of the data URIs (and, for
    :func:`~siliconvision.images.encode_image`, base64 strings) it holds; the least
    recently used entries are evicted first. Entries larger than ``max_bytes`` are not
    stored.

    Example:
        >>> import io
        >>> from PIL import Image as PILImage
        >>> from siliconvision.images import prepare_image
        >>> cache = ImageCache(max_entries=8)
        >>> buf = io.BytesIO(); PILImage.new("RGB", (8, 8)).save(buf, "PNG")
        >>> _ = prepare_image(buf.getvalue(), cache=cache)
        >>> _ = prepare_image(buf.getvalue(), cache=cache)
        >>> (cache.hits, cache.misses, len(cache))
        (1, 1, 1)
    """

    def __init__(self, max_entries: int = 256, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("max_entries and max_bytes must be >= 0")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        # encode_image results held, by the identity of their base64 string (alive, so
        # its id is its own while indexed), with the SHA-256 of each data URI text it
        # was prepared as: the same block sent again is not hashed again.
        self._digests: dict[int, tuple[EncodedImage, dict[str, bytes]]] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    @property
    def hits(self) -> int:
        """How many lookups found an entry."""
        return self._hits

    @property
    def misses(self) -> int:
        """How many lookups found nothing."""
        return self._misses

    @property
    def total_bytes(self) -> int:
        """Characters of data URI and base64 held (one byte each: they are ASCII)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> PreparedImage | None:
        """The entry for ``key`` (marked most recently used), or ``None``."""
        value = self._lookup(key, count_miss=True)
        return value if isinstance(value, PreparedImage) else None

    def _peek(self, key: Hashable) -> PreparedImage | None:
        """Like :meth:`get`, but an absent key is not counted as a miss (a first,
        cheaper lookup that a counted one follows)."""
        value = self._lookup(key, count_miss=False)
        return value if isinstance(value, PreparedImage) else None

    def _lookup(self, key: Hashable, *, count_miss: bool) -> _Entry | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self._misses += count_miss
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: Hashable, value: _Entry) -> None:
        """Store ``value`` under ``key``, evicting least recently used entries."""
        cost = _cost(value)
        if cost > self.max_bytes or self.max_entries == 0:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._drop(old)
            self._entries[key] = value
            self._bytes += cost
            if isinstance(value, EncodedImage):
                self._digests[id(value.data)] = (value, {})
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._drop(evicted)

    def _drop(self, value: _Entry) -> None:
        """Account for ``value`` leaving (the lock is held)."""
        self._bytes -= _cost(value)
        if isinstance(value, EncodedImage):
            known = self._digests.get(id(value.data))
            if known is not None and known[0] is value:
                del self._digests[id(value.data)]

    def _text_digest(self, prefix: str, text: str) -> bytes:
        """SHA-256 of ``prefix + text`` (ASCII), a megabyte at a time (no joined copy).

        When ``text`` is the very base64 string of an :func:`encode_image` result held
        here (an image block sent again), the digest is remembered, per ``prefix``.
        """
        with self._lock:
            known = self._digests.get(id(text))
            remembered = known[1] if known is not None and known[0].data is text else None
            if remembered is not None and prefix in remembered:
                return remembered[prefix]
        digest = hashlib.sha256(prefix.encode("ascii"))
        for start in range(0, len(text), _HASH_CHUNK):
            digest.update(text[start : start + _HASH_CHUNK].encode("ascii"))
        value = digest.digest()
        if remembered is not None:
            with self._lock:
                remembered[prefix] = value
        return value

    def clear(self) -> None:
        """Drop every entry and reset the hit/miss counters."""
        with self._lock:
            self._entries.clear()
            self._digests.clear()
            self._bytes = 0
            self._hits = 0
            self._misses = 0


def _cost(value: _Entry) -> int:
    if isinstance(value, PreparedPdf):
        return sum(len(page.url) for page in value.pages)
    return len(value.url) if isinstance(value, PreparedImage) else len(value.data)


DEFAULT_CACHE: Final = ImageCache()
"""The process-wide cache :func:`~siliconvision.images.prepare_image` uses unless told
otherwise."""


def relabelled(value: _Result, label: str) -> _Result:
    """A cached result, named after the source it was found for this time."""
    if value.source_label == label:
        return value
    document: object = value
    if isinstance(document, PreparedPdf):
        result: Any = _relabelled_pages(document, label)
        return cast(_Result, result)
    return dataclasses.replace(value, source_label=label)


def _relabelled_pages(document: PreparedPdf, label: str) -> PreparedPdf:
    pages = tuple(
        dataclasses.replace(page, source_label=page_label(label, number))
        for page, number in zip(document.pages, document.page_numbers, strict=True)
    )
    return dataclasses.replace(document, pages=pages, source_label=label)


def cached(
    cache: ImageCache | None,
    key: Hashable,
    label: str,
    kind: type[_Result],
    compute: Callable[[], _Result],
) -> _Result:
    """The ``kind`` of result held under ``key``, else ``compute()`` (stored)."""
    if cache is None:
        return compute()
    hit = cache._lookup(key, count_miss=True)
    if isinstance(hit, kind):
        return relabelled(hit, label)
    result = compute()
    cache.put(key, result)
    return result
