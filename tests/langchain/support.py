"""Shared test support for the LangChain adapter: one emulator per session, sample images,
and the standard suites' sample image and PDF served from loopback (no internet)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from siliconvision.testing import LocalSiliconCloud, PdfPage, make_pdf

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_IMAGES = REPO / "examples" / "images"
QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
QWEN_7B = "Qwen/Qwen2.5-VL-7B-Instruct"
INTERNVL = "OpenGVLab/InternVL2-26B"
THINKING = "Qwen/Qwen3-VL-8B-Thinking"

#: The image langchain-tests' image tests download (``httpx.get``) and send as a URL.
STANDARD_IMAGE_URL = (
    "https://raw.githubusercontent.com/langchain-ai/docs/4d11d08b6b0e210bd456943f7a22febbd168b543"
    "/src/images/agentic-rag-output.png"
)
STANDARD_IMAGE_SIZE = (1200, 800)
#: The PDF langchain-tests' PDF tests download (``httpx.get``) and send as base64.
STANDARD_PDF_URL = "https://www.w3.org/WAI/ER/tests/xhtml/testfiles/resources/pdf/dummy.pdf"


class _Shared:
    emulator: LocalSiliconCloud | None = None

    @property
    def emu(self) -> LocalSiliconCloud:
        if self.emulator is None:
            raise RuntimeError("the shared LocalSiliconCloud is not running")
        return self.emulator


SHARED = _Shared()


def diagram_png(size: tuple[int, int] = STANDARD_IMAGE_SIZE) -> bytes:
    """A deterministic diagram-like PNG (white page, boxes and arrows), mostly white."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    w, h = size
    for i, colour in enumerate(["#1f77b4", "#ff7f0e", "#2ca02c"]):
        x = w // 10 + i * w // 3
        draw.rectangle([x, h // 3, x + w // 6, h // 3 + h // 6], outline=colour, width=6)
        if i:
            draw.line([x - w // 6, h // 3 + h // 12, x, h // 3 + h // 12], fill="black", width=4)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def dummy_pdf() -> bytes:
    """A one-page PDF standing in for the suites' ``dummy.pdf`` (its title as text)."""
    return make_pdf(
        [
            PdfPage(
                size=(612.0, 792.0),
                rects=[((72, 600, 468, 4), (0, 0, 0))],
                text=[(72, 700, 24, "Dummy PDF file")],
            )
        ]
    )


@contextmanager
def standard_image_served(emu: LocalSiliconCloud) -> Iterator[bytes]:
    """Serve the standard suites' sample image (and sample PDF) without the internet.

    The emulator "fetches" the image URL from local bytes (``serve_url``); the
    client-side ``httpx.get`` of langchain-tests is redirected, at the transport level,
    to the same bytes really served by the emulator on 127.0.0.1 (``add_file``): the
    image, and a PDF written here (:func:`dummy_pdf`) for the PDF tests' URL.
    """
    data = diagram_png()
    emu.serve_url(STANDARD_IMAGE_URL, data, "image/png")
    loopback = {
        STANDARD_IMAGE_URL: emu.add_file("agentic-rag-output.png", data, "image/png"),
        STANDARD_PDF_URL: emu.add_file("dummy.pdf", dummy_pdf(), "application/pdf"),
    }
    original = httpx.HTTPTransport.handle_request

    def handle_request(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        served = loopback.get(str(request.url))
        if served is not None:
            request = httpx.Request(request.method, served, headers=request.headers)
        return original(self, request)

    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
    try:
        yield data
    finally:
        httpx.HTTPTransport.handle_request = original  # type: ignore[method-assign]


def emulator_params(**extra: Any) -> dict[str, Any]:
    """``ChatSiliconVision`` parameters pointing at the shared emulator."""
    emu = SHARED.emu
    return {"base_url": emu.base_url, "api_key": emu.api_key, "max_retries": 0, **extra}


class SiliconVisionCapabilities:
    """The capability flags both standard suites (unit and integration) declare.

    Mixed in before ``ChatModelUnitTests`` / ``ChatModelIntegrationTests``.
    """

    @property
    def chat_model_class(self) -> type[Any]:
        from langchain_siliconvision import ChatSiliconVision

        return ChatSiliconVision

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return QWEN_7B
