"""Image sizing and token rules, as SiliconCloud documents them.

Two questions, one set of rules:

- :func:`server_image_size`: the size at which the server keeps an image for a
  model and ``detail`` (so anything larger is uploaded for nothing);
- :func:`estimate_image_tokens`: what that image costs in prompt tokens.

Example (the worked examples of the vendor's guide):
    >>> estimate_image_tokens(224, 448, model="Qwen/Qwen2.5-VL-72B-Instruct")
    128
    >>> server_image_size(1024, 1024, model="Qwen/Qwen2.5-VL-72B-Instruct")
    (1036, 1036)
    >>> estimate_image_tokens(3172, 4096, model="Qwen/Qwen2.5-VL-72B-Instruct")
    16240
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .catalog import Detail, ModelSpec, TokenRule, get_model_spec

__all__ = [
    "URL_IMAGE_SIZE_ASSUMED",
    "client_target_size",
    "estimate_image_tokens",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "is_low_detail",
    "server_image_size",
]


def is_low_detail(detail: Detail | None) -> bool:
    """``low`` and ``auto`` both mean low-resolution mode; omitted/``high`` is high."""
    return detail in ("low", "auto")


def _qwen_resize(width: int, height: int, rule: TokenRule) -> tuple[int, int]:
    patch = rule.patch
    w_bar = math.ceil(width / patch) * patch
    h_bar = math.ceil(height / patch) * patch
    max_pixels = rule.max_pixels
    if max_pixels is not None and w_bar * h_bar > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        w_bar = max(patch, math.floor(width / beta / patch) * patch)
        h_bar = max(patch, math.floor(height / beta / patch) * patch)
    elif w_bar * h_bar < rule.min_pixels:
        beta = math.sqrt(rule.min_pixels / (width * height))
        w_bar = math.ceil(width * beta / patch) * patch
        h_bar = math.ceil(height * beta / patch) * patch
    return w_bar, h_bar


def _deepseek_grid(width: int, height: int, rule: TokenRule) -> tuple[int, int]:
    """DeepSeek-VL2's ``select_best_resolution``: (width tiles, height tiles)."""
    best = (1, 1)
    best_effective = -1
    best_waste = math.inf
    for w_tiles in range(1, rule.max_tiles + 1):
        for h_tiles in range(1, rule.max_tiles // w_tiles + 1):
            cand_w, cand_h = w_tiles * rule.tile, h_tiles * rule.tile
            scale = min(cand_w / width, cand_h / height)
            effective = min(int(width * scale) * int(height * scale), width * height)
            waste = cand_w * cand_h - effective
            if effective > best_effective or (effective == best_effective and waste < best_waste):
                best, best_effective, best_waste = (w_tiles, h_tiles), effective, waste
    return best


def _internvl_grid(width: int, height: int, rule: TokenRule) -> tuple[int, int]:
    """InternVL's ``dynamic_preprocess``: the tile grid closest to the aspect ratio."""
    aspect = width / height
    ratios = sorted(
        {
            (i, j)
            for n in range(1, rule.max_tiles + 1)
            for i in range(1, n + 1)
            for j in range(1, n + 1)
            if i * j <= rule.max_tiles
        },
        key=lambda r: r[0] * r[1],
    )
    best = (1, 1)
    best_diff = math.inf
    area = width * height
    for i, j in ratios:
        diff = abs(aspect - i / j)
        if diff < best_diff or (diff == best_diff and area > 0.5 * rule.tile * rule.tile * i * j):
            best, best_diff = (i, j), diff
    return best


def _uses_single_tile(rule: TokenRule, detail: Detail | None, image_count: int) -> bool:
    if is_low_detail(detail):
        return True
    return rule.full_res_max_images is not None and image_count > rule.full_res_max_images


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def server_image_size(
    width: int,
    height: int,
    *,
    model: str | ModelSpec,
    detail: Detail | None = "high",
    image_count: int = 1,
) -> tuple[int, int] | None:
    """The (width, height) the server keeps, or ``None`` when the rule is unknown.

    ``image_count`` matters for DeepSeek-VL2, which forces every image to one
    384x384 tile when a request carries more than two.
    """
    _check_size(width, height)
    rule = get_model_spec(model).token_rule
    if rule.kind == "none":
        return None
    if rule.kind == "qwen":
        if is_low_detail(detail) and rule.low_size:
            return rule.low_size, rule.low_size
        return _qwen_resize(width, height, rule)
    if rule.kind == "deepseek_vl2":
        if _uses_single_tile(rule, detail, image_count):
            return rule.tile, rule.tile
        w_tiles, h_tiles = _deepseek_grid(width, height, rule)
        return w_tiles * rule.tile, h_tiles * rule.tile
    # InternVL-style tiles
    if is_low_detail(detail):
        return rule.tile, rule.tile
    i, j = _internvl_grid(width, height, rule)
    return i * rule.tile, j * rule.tile


def client_target_size(
    width: int,
    height: int,
    *,
    model: str | ModelSpec,
    detail: Detail | None = "high",
    image_count: int = 1,
) -> tuple[int, int] | None:
    """The size worth uploading, or ``None`` when the image should be left as it is.

    Never upscales. For Qwen-style high detail it is exactly the server's kept size
    (so the server does not resample again); otherwise the image is fitted inside
    the server's box, keeping its aspect ratio (robust if the server pads rather
    than stretches).
    """
    _check_size(width, height)
    spec = get_model_spec(model)
    rule = spec.token_rule
    kept = server_image_size(width, height, model=spec, detail=detail, image_count=image_count)
    if kept is None:
        return None
    box_w, box_h = kept
    if rule.kind == "qwen" and not is_low_detail(detail):
        # Exact kept size, but only when it shrinks the image in both directions.
        if box_w * box_h < width * height and box_w <= width and box_h <= height:
            return box_w, box_h
        return None
    if width <= box_w and height <= box_h:
        return None
    scale = min(box_w / width, box_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def estimate_image_tokens(
    width: int,
    height: int,
    *,
    model: str | ModelSpec,
    detail: Detail | None = "high",
    image_count: int = 1,
) -> int:
    """Prompt tokens one image costs, by the documented rule for ``model``.

    Unknown models are estimated with the Qwen-VL rule (the most common family)
    and ``low`` as 256 tokens; treat that as an estimate, not a bill.
    """
    _check_size(width, height)
    spec = get_model_spec(model)
    rule = spec.token_rule
    if rule.kind == "none":
        if is_low_detail(detail):
            return rule.low_tokens
        w, h = _qwen_resize(width, height, TokenRule(kind="qwen", max_pixels=3584 * 3584))
        return (w // 28) * (h // 28)
    if rule.kind == "qwen":
        if is_low_detail(detail):
            return rule.low_tokens
        w, h = _qwen_resize(width, height, rule)
        return (w // rule.patch) * (h // rule.patch)
    if rule.kind == "deepseek_vl2":
        if _uses_single_tile(rule, detail, image_count):
            w_tiles = h_tiles = 1
        else:
            w_tiles, h_tiles = _deepseek_grid(width, height, rule)
        return (h_tiles * w_tiles + 1) * 196 + (w_tiles + 1) * 14 + 1
    if is_low_detail(detail):
        return rule.tokens_per_tile
    i, j = _internvl_grid(width, height, rule)
    blocks = i * j
    return (blocks + (1 if blocks > 1 else 0)) * rule.tokens_per_tile


#: Assumed pixels of an http(s) image URL that is not fetched client-side.
URL_IMAGE_SIZE_ASSUMED = (1024, 1024)


def estimate_text_tokens(text: str) -> int:
    """A model-neutral text estimate: a quarter of the UTF-8 bytes, rounded up."""
    return math.ceil(len(text.encode("utf-8")) / 4)


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    pieces: list[str] = []
    if isinstance(content, str):
        pieces.append(content)
    elif isinstance(content, list):
        pieces += [p["text"] for p in content if p.get("type") == "text"]
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        pieces += [str(function.get("name", "")), str(function.get("arguments", ""))]
    return "".join(pieces)


_HEADER_CHARS = 64 * 1024  # base64 of 48 KiB: the size is in the first bytes of a file


def _data_uri_size(url: str) -> tuple[int, int]:
    """Pixels of a data URI image, from its header only: the first 48 KiB are decoded
    (enough for the header of every format, unless a JPEG carries a larger EXIF block
    first), the whole payload only when they do not suffice."""
    import base64
    import io

    from PIL import Image

    payload = url[url.index(",") + 1 :]
    head = payload[: _HEADER_CHARS - _HEADER_CHARS % 4]
    for part in (head, payload) if len(payload) > len(head) else (payload,):
        try:
            with Image.open(io.BytesIO(base64.b64decode(part))) as image:
                width, height = image.size
            return int(width), int(height)
        except Exception:
            if part is payload:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def estimate_prompt_tokens(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str | ModelSpec,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Estimated prompt tokens of *prepared* messages (as sent on the wire).

    Images count by the documented rule of the model's family (sizes read from the
    data URIs; an unfetched http(s) URL counts as ``URL_IMAGE_SIZE_ASSUMED``), text
    as :func:`estimate_text_tokens` plus 4 per message, tools as their JSON text.

    >>> estimate_prompt_tokens([{"role": "user", "content": "hello"}],
    ...     model="Qwen/Qwen2.5-VL-72B-Instruct")
    6
    """
    spec = get_model_spec(model)
    images = [
        part["image_url"]
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    ]
    total = sum(4 + estimate_text_tokens(_message_text(message)) for message in messages)
    for image in images:
        url = image["url"]
        width, height = _data_uri_size(url) if url.startswith("data:") else URL_IMAGE_SIZE_ASSUMED
        total += estimate_image_tokens(
            width, height, model=spec, detail=image.get("detail"), image_count=len(images)
        )
    if tools:
        total += estimate_text_tokens(json.dumps(list(tools)))
    return total
