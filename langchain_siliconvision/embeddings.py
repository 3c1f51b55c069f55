"""``SiliconVisionEmbeddings``: SiliconCloud text embeddings (``BAAI/bge-m3``) for RAG."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator

from siliconvision.client import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_RETRY_INITIAL_DELAY,
    DEFAULT_RETRY_MAX_DELAY,
    SiliconVisionClient,
    resolve_base_url,
)

from ._client import ClientHolder, KeylessPickle, default_api_key

__all__ = ["SiliconVisionEmbeddings"]


class SiliconVisionEmbeddings(KeylessPickle, BaseModel, Embeddings):
    """Text embeddings from SiliconCloud (``POST /v1/embeddings``), e.g. to index captions.

    Configured like :class:`~langchain_siliconvision.ChatSiliconVision`: ``api_key``
    (else ``SILICONFLOW_API_KEY``/``SILICONCLOUD_API_KEY``), ``base_url`` (else
    ``SILICONFLOW_BASE_URL``), ``model`` (default ``BAAI/bge-m3``); texts are sent in
    batches of ``batch_size``.

    Example:
        >>> from langchain_core.vectorstores import InMemoryVectorStore
        >>> from langchain_siliconvision import SiliconVisionEmbeddings
        >>> store = InMemoryVectorStore(SiliconVisionEmbeddings())
        >>> store.add_texts(["a red circle", "a bar chart"])  # doctest: +SKIP
    """

    model: str = DEFAULT_EMBEDDING_MODEL
    api_key: SecretStr | None = Field(default_factory=default_api_key)
    base_url: str = Field(default_factory=resolve_base_url)
    timeout: float | None = 60.0
    max_retries: int = Field(default=2, ge=0)
    retry_initial_delay: float = Field(
        default=DEFAULT_RETRY_INITIAL_DELAY, ge=0, allow_inf_nan=False
    )
    retry_max_delay: float = Field(default=DEFAULT_RETRY_MAX_DELAY, ge=0, allow_inf_nan=False)
    batch_size: int = Field(default=32, ge=1)

    _holder: ClientHolder = PrivateAttr(default_factory=ClientHolder)

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        return resolve_base_url(value)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.api_key,  # a SecretStr: compared by value, masked in any repr
            self.base_url,
            self.timeout,
            self.max_retries,
            self.retry_initial_delay,
            self.retry_max_delay,
        )

    def _new_client(self) -> SiliconVisionClient:
        return SiliconVisionClient(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_initial_delay=self.retry_initial_delay,
            retry_max_delay=self.retry_max_delay,
        )

    def _batches(self, texts: list[str]) -> list[list[str]]:
        return [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` (in batches of ``batch_size``)."""
        client = self._holder.get(self._key(), self._new_client)
        vectors: list[list[float]] = []
        for batch in self._batches(list(texts)):
            vectors += client.embed(batch, model=self.model)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`."""
        client = self._holder.get(self._key(), self._new_client)
        vectors: list[list[float]] = []
        for batch in self._batches(list(texts)):
            vectors += await client.aembed(batch, model=self.model)
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self.aembed_documents([text]))[0]
