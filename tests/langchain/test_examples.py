"""The LangChain examples run offline (in this process, so sockets stay loopback-only)."""

from __future__ import annotations

import runpy

import pytest

from tests.langchain.support import REPO

EXAMPLES = REPO / "examples"


def run_example(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_chain_example_streams_a_multi_image_answer(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("langchain_chain.py", capsys)
    assert "using the local emulator" in out
    assert "I see 3 images." in out
    assert out.index("Image 1:") < out.index("Image 2:") < out.index("Image 3:")
    assert "dominant colour #885958" in out  # the sunset photo arrived, third
    tokens = int(out.rsplit("[", 1)[1].split(" tokens streamed")[0])
    assert tokens > 10  # streamed piece by piece through the callback


def test_agent_example_calls_the_image_tool(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("langchain_agent.py", capsys)
    assert "-> agent calls ask_image({'image': 'receipt.png'" in out
    assert "<- ask_image: I see 1 image." in out
    assert "Image 1: 300x400 PNG, detail high" in out
    assert out.strip().splitlines()[-1].startswith("Text:")


def test_rag_example_retrieves_the_red_circle(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("langchain_rag.py", capsys)
    assert out.count("captioned ") == 4
    assert "['red_circle.png']" in out
    answer = out.split("Answer:", 1)[1]
    assert "256x256 PNG, detail high, dominant colour #dc1414 (red)" in answer
