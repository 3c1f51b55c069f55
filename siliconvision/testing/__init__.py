"""Testing helpers: :class:`LocalSiliconCloud`, a local SiliconCloud on 127.0.0.1.

Example:
    >>> from siliconvision.testing import LocalSiliconCloud
    >>> with LocalSiliconCloud() as emu:  # doctest: +SKIP
    ...     client = openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url)
"""

from ._records import ReceivedRequest, ScriptedReply, SeenImage
from .emulator import (
    DEFAULT_ERROR_BODIES,
    LocalSiliconCloud,
    RateWindowStats,
    default_error_body,
    rate_limit_body,
)

__all__ = [
    "DEFAULT_ERROR_BODIES",
    "LocalSiliconCloud",
    "RateWindowStats",
    "ReceivedRequest",
    "ScriptedReply",
    "SeenImage",
    "default_error_body",
    "rate_limit_body",
]
