"""Image sizing and token rules, from the models' own image processors.

Three questions, one set of rules (:class:`~siliconvision.catalog.TokenRule`, each
following its processor's code and cited in the catalog):

- :func:`server_image_size`: the size at which the server works on an image for a
  model and ``detail`` (so anything larger is uploaded for nothing);
- :func:`client_target_size`: the smaller size worth uploading, from which the
  server's own rule gives the same result as from the original;
- :func:`estimate_image_tokens`: what the image costs in prompt tokens.

Example (the vendor guide's worked examples; Qwen2.5-VL rounds each side to the
nearest multiple of 28, so 1024 becomes 1036):
    >>> estimate_image_tokens(224, 448, model="Qwen/Qwen2.5-VL-72B-Instruct")
    128
    >>> server_image_size(1024, 1024, model="Qwen/Qwen2.5-VL-72B-Instruct")
    (1036, 1036)
    >>> estimate_image_tokens(3172, 4096, model="Qwen/Qwen2.5-VL-72B-Instruct")
    16240

Qwen3-VL works in 32-pixel units, from 65,536 to 16,777,216 pixels:
    >>> server_image_size(8000, 6000, model="Qwen/Qwen3-VL-8B-Instruct")
    (4704, 3520)
    >>> estimate_image_tokens(8000, 6000, model="Qwen/Qwen3-VL-8B-Instruct")
    16170

A model without a sourced rule has no estimate (and its images are never resized):
    >>> estimate_image_tokens(800, 600, model="stepfun-ai/step3") is None
    True
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._datauri import decode_data_uri, is_data_uri
from .catalog import Detail, ModelSpec, TokenRule, get_model_spec

__all__ = [
    "URL_IMAGE_SIZE_ASSUMED",
    "client_target_size",
    "estimate_image_tokens",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "image_count_key",
    "is_low_detail",
    "page_render_size",
    "server_image_size",
]

Size = tuple[int, int]


def is_low_detail(detail: Detail | None) -> bool:
    """``low`` and ``auto`` both mean low-resolution mode; omitted/``high`` is high."""
    return detail in ("low", "auto")


# --------------------------------------------------------------------------- the rules
# Each function follows its processor's code step by step (same operations in the
# same order, so the floating-point results are the same); tests/rules/ compares
# them with that code.


def _refuse_ratio(width: int, height: int, limit: float | None) -> None:
    if limit is not None and max(height, width) / min(height, width) > limit:
        raise ValueError(
            f"aspect ratio {max(height, width) / min(height, width):.1f}:1 ({width}x{height}) "
            f"exceeds {limit:g}:1, which the model's image processor refuses"
        )


def _qwen_size(width: int, height: int, rule: TokenRule) -> Size:
    """transformers ``qwen2_vl`` ``smart_resize`` (the PIL image processor's)."""
    factor = rule.patch
    max_pixels = rule.max_pixels if rule.max_pixels is not None else math.inf
    _refuse_ratio(width, height, rule.max_aspect_ratio)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < rule.min_pixels:
        beta = math.sqrt(rule.min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


def _glm_size(width: int, height: int, rule: TokenRule) -> Size:
    """transformers ``glm4v`` ``smart_resize``, a still image being ``frames`` frames."""
    factor = rule.patch
    num_frames = temporal_factor = rule.frames
    max_pixels = rule.max_pixels if rule.max_pixels is not None else math.inf
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height = int(height * scale)
        width = int(width * scale)
    _refuse_ratio(width, height, rule.max_aspect_ratio)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < rule.min_pixels:
        beta = math.sqrt(rule.min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


@functools.cache
def _target_ratios(min_num: int, max_num: int) -> tuple[Size, ...]:
    """``dynamic_preprocess``'s candidate grids, built and ordered as it builds them (the
    order breaks ties)."""
    target_ratios = {
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if i * j <= max_num and i * j >= min_num
    }
    return tuple(sorted(target_ratios, key=lambda x: x[0] * x[1]))


def _tile_grid(width: int, height: int, tile: int, min_num: int, max_num: int) -> Size:
    """InternVL's ``dynamic_preprocess`` + ``find_closest_aspect_ratio``: (cols, rows)."""
    aspect_ratio = width / height
    best_ratio_diff = math.inf
    best_ratio = (1, 1)
    area = width * height
    for ratio in _target_ratios(min_num, max_num):
        ratio_diff = abs(aspect_ratio - ratio[0] / ratio[1])
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff and area > 0.5 * tile * tile * ratio[0] * ratio[1]:
            best_ratio = ratio
    return best_ratio


def _best_resolution(width: int, height: int, candidates: Sequence[Size]) -> Size:
    """DeepSeek-VL2's ``select_best_resolution``: the (width, height) canvas."""
    best_fit = candidates[0]
    max_effective_resolution = 0
    min_wasted_resolution = math.inf
    for cand_w, cand_h in candidates:
        scale = min(cand_w / width, cand_h / height)
        downscaled_width, downscaled_height = int(width * scale), int(height * scale)
        effective_resolution = min(downscaled_width * downscaled_height, width * height)
        wasted_resolution = (cand_w * cand_h) - effective_resolution
        if effective_resolution > max_effective_resolution or (
            effective_resolution == max_effective_resolution
            and wasted_resolution < min_wasted_resolution
        ):
            max_effective_resolution = effective_resolution
            min_wasted_resolution = wasted_resolution
            best_fit = (cand_w, cand_h)
    return best_fit


def _contain(width: int, height: int, box: Size) -> Size:
    """Pillow's ``ImageOps.contain`` size (``ImageOps.pad`` fits the image so)."""
    box_w, box_h = box
    im_ratio = width / height
    dest_ratio = box_w / box_h
    if im_ratio != dest_ratio:
        if im_ratio > dest_ratio:
            return box_w, round(height / width * box_w)
        return round(width / height * box_h), box_h
    return box


@dataclass(frozen=True)
class _Served:
    """What the server makes of an image: enough to compare two uploads."""

    canvas: Size  # the largest canvas the server builds (server_image_size)
    tokens: int
    stretched: Size | None = None  # rows/columns resampled to, aspect not kept
    fitted: tuple[Size, ...] = ()  # contents fitted (aspect kept) into padded views


def _serve_high(width: int, height: int, rule: TokenRule, single_tile: bool) -> _Served:
    kind = rule.kind
    if kind in ("qwen", "glm"):
        w, h = (_qwen_size if kind == "qwen" else _glm_size)(width, height, rule)
        return _Served((w, h), (w // rule.patch) * (h // rule.patch), stretched=(w, h))
    if kind == "tiles":
        cols, rows = _tile_grid(width, height, rule.tile, rule.min_tiles, rule.max_tiles)
        blocks = cols * rows
        views = blocks + (1 if rule.thumbnail and blocks != 1 else 0)
        canvas = (cols * rule.tile, rows * rule.tile)
        return _Served(canvas, views * rule.tokens_per_tile, stretched=canvas)
    if kind == "deepseek_vl2":
        tile = rule.tile
        canvas = (tile, tile) if single_tile else _best_resolution(width, height, rule.candidates)
        cols, rows = canvas[0] // tile, canvas[1] // tile
        side = rule.tile_side_tokens
        tokens = side * (side + 1) + 1 + (rows * side) * (cols * side + 1)
        fitted = (_contain(width, height, canvas), _contain(width, height, (tile, tile)))
        return _Served(canvas, tokens, fitted=fitted)
    if kind == "deepseek_ocr":
        base = rule.base_size
        global_view = _contain(width, height, (base, base))
        side = rule.base_side_tokens
        tokens = (side + 1) * side + 1
        if width <= rule.tile and height <= rule.tile:
            return _Served((base, base), tokens, fitted=(global_view,))
        cols, rows = _tile_grid(width, height, rule.tile, rule.min_tiles, rule.max_tiles)
        side = rule.tile_side_tokens
        tokens += (side * cols + 1) * (side * rows)
        canvas = (cols * rule.tile, rows * rule.tile)
        return _Served(canvas, tokens, stretched=canvas, fitted=(global_view,))
    raise AssertionError(f"no rule for kind {kind!r}")  # pragma: no cover


def _serve(
    width: int, height: int, rule: TokenRule, detail: Detail | None, image_count: int
) -> _Served:
    low = is_low_detail(detail) and rule.low_size is not None
    if rule.kind == "deepseek_vl2":
        many = rule.full_res_max_images is not None and image_count > rule.full_res_max_images
        return _serve_high(width, height, rule, single_tile=low or many)
    if not low:
        return _serve_high(width, height, rule, single_tile=False)
    # detail=low: the server makes a low_size square first (stretched or fitted: not
    # documented), then the processor sizes that square by its own rule.
    size = rule.low_size
    assert size is not None
    square = _serve_high(size, size, rule, single_tile=False)
    tokens = square.tokens if rule.low_tokens is None else rule.low_tokens
    return _Served(
        square.canvas,
        tokens,
        stretched=(size, size),
        fitted=(_contain(width, height, (size, size)),),
    )


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def _served(
    width: int,
    height: int,
    model: str | ModelSpec,
    detail: Detail | None,
    image_count: int,
) -> tuple[TokenRule, _Served | None]:
    _check_size(width, height)
    rule = get_model_spec(model).token_rule
    if rule.kind == "none":
        return rule, None
    return rule, _serve(width, height, rule, detail, image_count)


def server_image_size(
    width: int,
    height: int,
    *,
    model: str | ModelSpec,
    detail: Detail | None = "high",
    image_count: int = 1,
) -> tuple[int, int] | None:
    """The (width, height) the server works at, or ``None`` when the rule is unknown.

    That is the size the model's processor resizes the image to (Qwen, GLM), the
    tile grid it stretches it to (InternVL, DeepSeek-OCR) or the padded canvas it fits
    it into (DeepSeek-VL2). ``low``/``auto``: the processor's size for the 448x448
    square SiliconCloud makes first (see :mod:`siliconvision.catalog`).
    ``image_count`` matters for DeepSeek-VL2, which makes every image one 384x384
    tile when a request carries more than two. Raises ``ValueError`` for a size the
    processor refuses (an aspect ratio over 200:1 on Qwen and GLM).
    """
    _, served = _served(width, height, model, detail, image_count)
    return None if served is None else served.canvas


def _fits_under(inner: Size, outer: Size) -> bool:
    return inner[0] <= outer[0] and inner[1] <= outer[1]


def _aspect_cover(width: int, height: int, need: Size) -> Size:
    """The smallest aspect-keeping size with at least ``need`` in both directions."""
    if width * need[1] >= height * need[0]:  # the height binds
        return max(need[0], round(width * need[1] / height)), need[1]
    return need[0], max(need[1], round(height * need[0] / width))


# A resize must save at least a tenth of the pixels (kept <= 9/10 of the original):
# the server trims a few rows or columns itself (Qwen rounds each side to the nearest
# 28 or 32 pixels), and trimming them here would cost a decode, a resize and, for a
# JPEG, another generation of compression that the model would then see, for a few
# bytes. Sending the original is always safe: the server does what it always does.
_MIN_SAVING: tuple[int, int] = (9, 10)  # (kept, original): at most 9 for 10

# An aspect-keeping upload is rounded to whole pixels, and the server rounds again
# when it fits it into a view; when that lands a pixel short, one or two more rows
# or columns put it right.
_NUDGES: tuple[Size, ...] = ((0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (0, 2), (2, 2))


def _kept_sizes(width: int, height: int, served: _Served) -> list[Size]:
    """The sizes, best first, from which the server's rule gives ``served`` again."""
    if not served.fitted:  # stretched only: exactly the size the server resamples to
        return [served.stretched] if served.stretched else []
    # a fitted view sees the aspect ratio: keep it, and cover every view
    need = served.stretched or (1, 1)
    for fitted in served.fitted:
        need = (max(need[0], fitted[0]), max(need[1], fitted[1]))
    base = _aspect_cover(width, height, need)
    return [(base[0] + dw, base[1] + dh) for dw, dh in _NUDGES]


def client_target_size(
    width: int,
    height: int,
    *,
    model: str | ModelSpec,
    detail: Detail | None = "high",
    image_count: int = 1,
) -> tuple[int, int] | None:
    """The smaller size worth uploading, or ``None`` when the image should go as it is.

    The server's rule applied to the returned size gives the same result as applied
    to the original: the same size or tile grid, the same tokens, and every view it
    builds (stretched or fitted and padded) the same size. So the upload keeps every
    row and column the server uses, never fewer pixels in either direction, and
    never more tokens. Never upscales, and resizes only to save at least a tenth of
    the pixels; ``None`` when the original should go as it is.

    - Qwen, GLM (high): exactly the processor's size (it then keeps it as it is).
    - InternVL (high): exactly the tile grid the server stretches the image to.
    - DeepSeek-VL2: the image fitted into its padded canvas (aspect kept).
    - DeepSeek-OCR: aspect kept, covering both the tile grid and the global view.
    - ``low``/``auto``: aspect kept, the shorter side 448, so that both readings of
      "resized to 448x448" (stretched, or fitted and padded) see every row and
      column they would have seen from the original.
    """
    rule, served = _served(width, height, model, detail, image_count)
    if served is None:
        return None
    for target in _kept_sizes(width, height, served):
        if min(target) < 1 or not _fits_under(target, (width, height)):
            continue
        area = target[0] * target[1]
        if area >= width * height or area * _MIN_SAVING[1] > width * height * _MIN_SAVING[0]:
            continue  # saves too little (see _MIN_SAVING)
        try:
            again = _serve(target[0], target[1], rule, detail, image_count)
        except ValueError:  # the processor would refuse this size (aspect ratio)
            continue
        if again == served:
            return target
    return None


def page_render_size(
    width: int,
    height: int,
    *,
    model: str | ModelSpec,
    detail: Detail | None = "high",
    image_count: int = 1,
) -> tuple[int, int] | None:
    """The size to draw a page at, when it can be drawn at any size (a PDF page read as
    ``width`` x ``height`` pixels at its reference resolution), or ``None`` when the
    rule is unknown (draw it at ``width`` x ``height``).

    The same sizes as :func:`client_target_size` (every row and column the server
    uses, the same tokens, every view the same size), without its two limits on
    existing pixels: a page is drawn, not resampled, so this may be a few pixels
    larger than ``width`` x ``height`` (Qwen rounds each side to the nearest multiple
    of 28, GLM too; InternVL's tile grid), and it is returned however little it saves.

    >>> page_render_size(1654, 2339, model="Qwen/Qwen2.5-VL-72B-Instruct")
    (1652, 2352)
    >>> page_render_size(1654, 2339, model="Qwen/Qwen2.5-VL-72B-Instruct", detail="low")
    (448, 634)
    >>> page_render_size(1654, 2339, model="OpenGVLab/InternVL2-26B")
    (896, 1344)
    """
    rule, served = _served(width, height, model, detail, image_count)
    if served is None:
        return None
    for target in _kept_sizes(width, height, served):
        if min(target) < 1:
            continue
        try:
            again = _serve(target[0], target[1], rule, detail, image_count)
        except ValueError:  # the processor would refuse this size (aspect ratio)
            continue
        if again == served:
            return target
    return None


def image_count_key(model: str | ModelSpec, image_count: int) -> bool | None:
    """What of a request's image count the model's image sizing depends on: two counts
    with the same key size (and count) every image alike. DeepSeek-VL2 makes every
    image one tile when a request carries more than two; no other rule looks at it.

    >>> [image_count_key("deepseek-ai/deepseek-vl2", n) for n in (1, 2, 3)]
    [False, False, True]
    >>> image_count_key("Qwen/Qwen2.5-VL-72B-Instruct", 20) is None
    True
    """
    rule = get_model_spec(model).token_rule
    if rule.kind == "deepseek_vl2" and rule.full_res_max_images is not None:
        return image_count > rule.full_res_max_images
    return None


def estimate_image_tokens(
    width: int,
    height: int,
    *,
    model: str | ModelSpec,
    detail: Detail | None = "high",
    image_count: int = 1,
) -> int | None:
    """Prompt tokens one image costs, by its model's processor; ``None`` if unknown.

    The count is the image placeholder tokens the processor puts in the prompt
    (Qwen's ``<|image_pad|>``, InternVL's ``<IMG_CONTEXT>``, DeepSeek's ``<image>``
    including its row separators). A model without a sourced rule (``token_rule.kind
    == "none"``: unknown ids, ``stepfun-ai/step3``, ``TeleAI/TeleMM``) gives ``None``
    rather than another family's count. Raises ``ValueError`` for a size the
    processor refuses.
    """
    _, served = _served(width, height, model, detail, image_count)
    return None if served is None else served.tokens


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


def _image_size(url: str) -> tuple[int, int]:
    """Pixels of a prepared image. A data URI's are read from its header: the first
    48 KiB are decoded (enough for the header of every format, unless a JPEG carries a
    larger EXIF block first), the whole payload only when they do not suffice. An
    http(s) URL's are not known (not fetched): :data:`URL_IMAGE_SIZE_ASSUMED`."""
    import io

    from PIL import Image as PILImage

    if not is_data_uri(url):
        return URL_IMAGE_SIZE_ASSUMED
    head = url[: url.index(",") + 1 + _HEADER_CHARS]
    for uri in (head, url) if len(url) > len(head) else (url,):
        try:
            with PILImage.open(io.BytesIO(decode_data_uri(uri, "(prepared image)").data)) as image:
                width, height = image.size
            return int(width), int(height)
        except Exception:
            if uri is url:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def estimate_prompt_tokens(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str | ModelSpec,
    tools: Sequence[Mapping[str, Any]] | None = None,
    unknown_image_tokens: int | None = None,
) -> int:
    """Estimated prompt tokens of *prepared* messages (as sent on the wire).

    Images count by their model's processor rule (:func:`estimate_image_tokens`;
    sizes read from the data URIs, an unfetched http(s) URL counts as
    ``URL_IMAGE_SIZE_ASSUMED``), text as :func:`estimate_text_tokens` plus 4 per
    message, tools as their JSON text.

    For a model without a sourced image rule, an image raises ``ValueError`` (its
    cost is unknown, and counting another family's would be a guess) unless
    ``unknown_image_tokens`` says what to count per image. Messages without images
    are counted for every model.

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
        width, height = _image_size(url)
        tokens = estimate_image_tokens(
            width, height, model=spec, detail=image.get("detail"), image_count=len(images)
        )
        if tokens is None:
            if unknown_image_tokens is None:
                raise ValueError(
                    f"no sourced image token rule for model {spec.id!r}, so its image "
                    "tokens are unknown; pass unknown_image_tokens=N to count N per "
                    "image, or register the model with a token_rule"
                )
            tokens = unknown_image_tokens
        total += tokens
    if tools:
        total += estimate_text_tokens(json.dumps(list(tools)))
    return total
