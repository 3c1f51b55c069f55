"""The LlamaIndex examples run offline (no key: the emulator) and say what they did."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chat_example(capsys: pytest.CaptureFixture[str]) -> None:
    streamed, completed = _load("llama_index_chat").main()
    out = capsys.readouterr().out
    assert "using the local emulator" in out
    assert streamed.startswith("I see 3 images.")
    assert "detail low, dominant colour #dc1414 (red)" in streamed  # the disc, low detail
    assert completed.startswith("I see 1 image.\nImage 1: 480x320 JPEG")
    assert "prompt +" in out and streamed in out


def test_chat_example_draws_its_own_images_when_the_samples_are_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _load("llama_index_chat")
    monkeypatch.setattr(module, "__file__", str(EXAMPLES / "missing" / "x.py"))
    streamed, _ = module.main()
    assert streamed.startswith("I see 3 images.")
    assert "Image 1: 256x256 PNG" in streamed  # its own drawings, not the samples


def test_agent_example(capsys: pytest.CaptureFixture[str]) -> None:
    answer = _load("llama_index_agent").main()
    out = capsys.readouterr().out
    assert "the agent's decisions are scripted" in out
    assert '-> ask_image({"image": "receipt.png"' in out
    assert "Image 1: 300x400 PNG" in answer  # the receipt reached the model through the tool


def test_rag_example(capsys: pytest.CaptureFixture[str]) -> None:
    answer = _load("llama_index_rag").main()
    out = capsys.readouterr().out
    for name in ("bar_chart.png", "receipt.png", "red_circle.png", "sunset.jpg"):
        assert f"captioned {name}" in out
    assert "[answered from: red_circle.png]" in out
    assert "Image 1: 256x256 PNG, detail high, dominant colour #dc1414 (red)." in answer
