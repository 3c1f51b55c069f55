"""Deterministic embeddings for the emulator: a signed hashing trick, L2-normalised.

Features are the lower-case word tokens (weight 1.0) and the character trigrams of
each word padded with ``#`` (weight 0.35). Each feature is hashed with BLAKE2b to
an index and a sign. Texts that share words or word fragments get a high cosine
similarity; unrelated texts get about zero. Good enough for offline RAG demos.
"""

from __future__ import annotations

import array
import base64
import hashlib
import math
import re
import sys
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from ..catalog import CATALOG, get_model_spec
from ._chat import MODEL_MISSING_MESSAGE, bad_request, invalid

__all__ = ["DEFAULT_DIMENSIONS", "embed_text", "embeddings_body"]

DEFAULT_DIMENSIONS = 1024
_WORD = re.compile(r"\w+")
_TRIGRAM_WEIGHT = 0.35


def _features(text: str) -> Iterator[tuple[bytes, float]]:
    for word in _WORD.findall(text.lower()):
        yield b"w:" + word.encode("utf-8"), 1.0
        padded = f"#{word}#"
        for i in range(len(padded) - 2):
            yield b"t:" + padded[i : i + 3].encode("utf-8"), _TRIGRAM_WEIGHT


@lru_cache(maxsize=4096)
def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> tuple[float, ...]:
    """The unit vector (float32 values) for ``text``; deterministic across runs."""
    vec = [0.0] * dimensions
    for feature, weight in _features(text):
        h = int.from_bytes(hashlib.blake2b(feature, digest_size=8).digest(), "little")
        vec[h % dimensions] += weight if h >> 63 else -weight
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        h = int.from_bytes(hashlib.blake2b(b"empty", digest_size=8).digest(), "little")
        vec[h % dimensions] = 1.0
        norm = 1.0
    return tuple(array.array("f", [v / norm for v in vec]))


def _encode_base64(vec: tuple[float, ...]) -> str:
    arr = array.array("f", vec)
    if sys.byteorder != "little":  # pragma: no cover - little-endian everywhere we run
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode("ascii")


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text.encode("utf-8")) / 4))


def embeddings_body(body: Any, *, model_allowed: Callable[[str], bool]) -> dict[str, Any]:
    """The ``/v1/embeddings`` answer for a parsed request; raises ``WireError``."""
    if not isinstance(body, dict):
        raise invalid("malformed JSON body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model is required")
    if not model_allowed(model):
        if model in CATALOG:
            raise invalid("model is not an embedding model")
        raise bad_request(20012, MODEL_MISSING_MESSAGE)
    dims = get_model_spec(model).embedding_dimensions or DEFAULT_DIMENSIONS
    raw = body.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(t, str) for t in raw):
        inputs = list(raw)
    else:
        raise invalid("input must be a string or a non-empty list of strings")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64", None):
        raise invalid("encoding_format must be float or base64")
    wanted = body.get("dimensions")
    if wanted is not None and wanted != dims:
        raise invalid(f"dimensions must be {dims} for this model")
    data: list[dict[str, Any]] = []
    for i, text in enumerate(inputs):
        vec = embed_text(text, dims)
        embedding: Any = _encode_base64(vec) if fmt == "base64" else list(vec)
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    tokens = sum(_tokens(t) for t in inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
