"""``SiliconVisionEmbedding``: SiliconCloud embeddings for LlamaIndex, text and images.

Text goes to SiliconCloud's ``/v1/embeddings`` (``BAAI/bge-m3`` by default) through the
core client. SiliconCloud documents no image embedding model, so an image is embedded
by captioning it with a vision model and embedding the caption: images and text
queries then share one vector space, which is what ``MultiModalVectorStoreIndex``
needs for text-to-image retrieval. Works offline against
:class:`siliconvision.testing.LocalSiliconCloud` (deterministic embeddings).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from io import BytesIO
from typing import Any

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import ImageType
from pydantic import SecretStr
from typing_extensions import Self

from siliconvision.captions import DEFAULT_CAPTION_PROMPT
from siliconvision.client import (
    DEFAULT_BASE_URL,
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_MODEL,
    DEFAULT_RETRY_INITIAL_DELAY,
    DEFAULT_RETRY_MAX_DELAY,
    SiliconVisionClient,
    resolve_api_key,
    resolve_base_url,
)
from siliconvision.content import Image

__all__ = ["SiliconVisionEmbedding"]


def _non_empty(texts: list[str]) -> list[str]:
    # The endpoint refuses empty strings; an empty node still needs a vector.
    return [text if text.strip() else " " for text in texts]


class SiliconVisionEmbedding(MultiModalEmbedding):
    """SiliconCloud text embeddings (and caption-based image embeddings).

    The key comes from ``api_key``, else ``SILICONFLOW_API_KEY``/``SILICONCLOUD_API_KEY``;
    like the LLM's, it is never a field.

    Example:
        >>> from llama_index.core import VectorStoreIndex
        >>> embed = SiliconVisionEmbedding()  # BAAI/bge-m3
        >>> embed.get_text_embedding("a red circle")[:3]  # doctest: +SKIP
        >>> index = VectorStoreIndex.from_documents(docs, embed_model=embed)  # doctest: +SKIP
    """

    model_name: str = Field(
        default=DEFAULT_EMBEDDING_MODEL, description="SiliconCloud embedding model id."
    )
    base_url: str = Field(default=DEFAULT_BASE_URL, description="API base URL.")
    caption_model: str = Field(
        default=DEFAULT_MODEL, description="Vision model that captions images to embed them."
    )
    caption_prompt: str = Field(
        default=DEFAULT_CAPTION_PROMPT, description="Prompt used to caption an image."
    )
    caption_concurrency: int = Field(
        default=4, ge=1, description="Images captioned at a time when embedding a batch."
    )
    timeout: float | None = Field(default=60.0, description="Request time-out in seconds.")
    max_retries: int = Field(default=2, ge=0, description="SDK retries on 429 and 5xx.")
    retry_initial_delay: float = Field(
        default=DEFAULT_RETRY_INITIAL_DELAY,
        ge=0,
        allow_inf_nan=False,
        description="Seconds before the first retry; doubled per retry.",
    )
    retry_max_delay: float = Field(
        default=DEFAULT_RETRY_MAX_DELAY,
        ge=0,
        allow_inf_nan=False,
        description="Longest wait between two attempts (Retry-After included).",
    )

    _api_key: SecretStr | None = PrivateAttr(default=None)
    _client: SiliconVisionClient | None = PrivateAttr(default=None)

    def __init__(
        self,
        model_name: str = DEFAULT_EMBEDDING_MODEL,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.update(model_name=model_name, base_url=resolve_base_url(base_url))
        super().__init__(**kwargs)
        self._api_key = resolve_api_key(api_key)

    @classmethod
    def class_name(cls) -> str:
        return "SiliconVisionEmbedding"

    @property
    def client(self) -> SiliconVisionClient:
        """The core client (created on first use)."""
        if self._client is None:
            self._client = SiliconVisionClient(
                api_key=self._api_key,
                base_url=self.base_url,
                model=self.caption_model,
                timeout=self.timeout,
                max_retries=self.max_retries,
                retry_initial_delay=self.retry_initial_delay,
                retry_max_delay=self.retry_max_delay,
            )
        return self._client

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        # The core client (a secret and open connections) is not copied: the copy
        # builds its own on first use.
        memo = {} if memo is None else memo
        if self._client is not None:
            memo[id(self._client)] = None
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[str, Any]:
        clone = self.model_copy()
        clone._api_key = None
        clone._client = None
        state: dict[str, Any] = super(SiliconVisionEmbedding, clone).__getstate__()
        return state

    # ------------------------------------------------------------------ text

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embeddings([query])[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aget_text_embeddings([query]))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.client.embed(_non_empty(texts), model=self.model_name)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self.client.aembed(_non_empty(texts), model=self.model_name)

    # ------------------------------------------------------------------ images

    def _caption_messages(self, img_file_path: ImageType) -> list[dict[str, Any]]:
        source: Any = img_file_path
        if isinstance(img_file_path, BytesIO):
            source = Image(img_file_path)
        return self.client.ask_messages([source], self.caption_prompt)

    def caption(self, img_file_path: ImageType) -> str:
        """The caption an image is embedded by (a path, URL or ``BytesIO``)."""
        messages = self._caption_messages(img_file_path)
        return self.client.chat(messages, model=self.caption_model).content.strip()

    async def acaption(self, img_file_path: ImageType) -> str:
        """Async :meth:`caption`."""
        messages = self._caption_messages(img_file_path)
        result = await self.client.achat(messages, model=self.caption_model)
        return result.content.strip()

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_text_embedding(self.caption(img_file_path))

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        """A batch (``MultiModalVectorStoreIndex`` sends ``embed_batch_size`` images):
        captioned ``caption_concurrency`` at a time, then one embeddings request for
        all the captions (SiliconCloud's ``/v1/embeddings`` takes a list)."""
        if len(img_file_paths) <= 1:
            captions = [self.caption(path) for path in img_file_paths]
        else:
            workers = min(self.caption_concurrency, len(img_file_paths))
            with concurrent.futures.ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="siliconvision-embed"
            ) as pool:
                futures = [
                    pool.submit(contextvars.copy_context().run, self.caption, path)
                    for path in img_file_paths
                ]
                captions = [future.result() for future in futures]
        return self._get_text_embeddings(captions) if captions else []

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return await self._aget_text_embedding(await self.acaption(img_file_path))

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        """Async :meth:`_get_image_embeddings`: the same bound, one embeddings request."""
        semaphore = asyncio.Semaphore(self.caption_concurrency)

        async def caption(path: ImageType) -> str:
            async with semaphore:
                return await self.acaption(path)

        captions = await asyncio.gather(*(caption(path) for path in img_file_paths))
        return await self._aget_text_embeddings(list(captions)) if captions else []
