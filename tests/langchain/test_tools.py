"""SiliconVisionTool (``ask_image``): what reaches the model, and what is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolCall, ToolMessage

from langchain_siliconvision import ChatSiliconVision, SiliconVisionTool
from siliconvision.testing import LocalSiliconCloud
from tests.imaging import make_image
from tests.langchain.support import EXAMPLE_IMAGES, QWEN, emulator_params


@pytest.fixture
def llm(emu: LocalSiliconCloud) -> ChatSiliconVision:
    return ChatSiliconVision(**emulator_params(model=QWEN))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "green.png").write_bytes(make_image((300, 200), "green"))
    (folder / "notes.txt").write_text("not an image")
    (tmp_path / "secret.png").write_bytes(make_image((10, 10), "black"))
    return folder


def call(tool: SiliconVisionTool, **args: Any) -> ToolMessage:
    message = tool.invoke(ToolCall(name="ask_image", args=args, id="call_1", type="tool_call"))
    assert isinstance(message, ToolMessage)
    return message


def test_local_file_inside_allowed_dirs_reaches_the_model(
    llm: ChatSiliconVision, emu: LocalSiliconCloud, photos: Path
) -> None:
    tool = SiliconVisionTool(llm=llm, allowed_dirs=[photos], detail="low")
    message = call(tool, image="green.png", question="What colour?")
    assert message.status == "success"
    assert "Image 1: 300x200 PNG, detail low, dominant colour" in str(message.content)
    request = emu.last_request
    assert request is not None
    assert [(i.width, i.color_name, i.detail) for i in request.images] == [(300, "green", "low")]
    content = request.body["messages"][0]["content"]
    assert content[-1] == {"type": "text", "text": "What colour?"}


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("../secret.png", "outside the allowed directories"),
        ("/etc/passwd", "outside the allowed directories"),
        ("missing.png", "no such file"),
        ("http://127.0.0.1:9/x.png", "loopback"),
        ("http://2130706433/x.png", "loopback"),
        ("http://[::ffff:169.254.169.254]/latest", "link-local"),
        ("http://good.example@10.0.0.1/a.png", "credentials"),
        ("http://localhost/a.png", "local or internal name"),
        ("file:///etc/passwd", "local file path or an http"),
    ],
)
def test_refusals_are_tool_errors_and_send_nothing(
    llm: ChatSiliconVision, emu: LocalSiliconCloud, photos: Path, image: str, reason: str
) -> None:
    tool = SiliconVisionTool(llm=llm, allowed_dirs=[photos])
    message = call(tool, image=image, question="What is this?")
    assert message.status == "error"
    assert reason in str(message.content)
    assert emu.requests == [] and emu.file_requests == []


def test_no_allowed_dirs_means_no_local_files(llm: ChatSiliconVision, photos: Path) -> None:
    tool = SiliconVisionTool(llm=llm)
    message = call(tool, image=str(photos / "green.png"), question="?")
    assert message.status == "error" and "reading local files is disabled" in str(message.content)


def test_not_an_image_is_a_tool_error(
    llm: ChatSiliconVision, emu: LocalSiliconCloud, photos: Path
) -> None:
    message = call(
        SiliconVisionTool(llm=llm, allowed_dirs=[photos]), image="notes.txt", question="?"
    )
    assert message.status == "error" and "cannot use image" in str(message.content)
    assert emu.requests == []


def test_public_urls_are_passed_to_the_server(
    llm: ChatSiliconVision, emu: LocalSiliconCloud
) -> None:
    url = emu.serve_url("http://93.184.215.14/cat.png", make_image((64, 64), "blue"))
    message = call(SiliconVisionTool(llm=llm), image=url, question="Colour?")
    assert message.status == "success" and "(blue)" in str(message.content)
    request = emu.last_request
    assert request is not None and request.images[0].url == url


def test_server_side_fetch_failure_is_a_tool_error(
    llm: ChatSiliconVision, emu: LocalSiliconCloud
) -> None:
    message = call(SiliconVisionTool(llm=llm), image="http://93.184.215.14/gone.png", question="?")
    assert message.status == "error"
    assert "could not use this image" in str(message.content) and "20015" in str(message.content)


def test_private_urls_only_when_allowed(llm: ChatSiliconVision, emu: LocalSiliconCloud) -> None:
    loopback = emu.add_file("tool/red.png", make_image((32, 32), "red"))
    refused = call(SiliconVisionTool(llm=llm), image=loopback, question="?")
    assert refused.status == "error" and "loopback" in str(refused.content)
    allowed = call(
        SiliconVisionTool(llm=llm, allow_private_urls=True), image=loopback, question="?"
    )
    assert allowed.status == "success" and "(red)" in str(allowed.content)


async def test_async_tool(llm: ChatSiliconVision, emu: LocalSiliconCloud) -> None:
    tool = SiliconVisionTool(llm=llm, allowed_dirs=[EXAMPLE_IMAGES])
    answer = await tool.ainvoke({"image": "red_circle.png", "question": "Colour?"})
    assert "(red)" in answer
    refused = await tool.ainvoke(
        ToolCall(
            name="ask_image",
            args={"image": "../README.md", "question": "?"},
            id="c",
            type="tool_call",
        )
    )
    assert refused.status == "error" and "outside" in refused.content
    assert len(emu.requests) == 1


def test_agent_uses_the_tool(llm: ChatSiliconVision, emu: LocalSiliconCloud) -> None:
    """A LangGraph agent (create_agent) calls ask_image; the vision answer reaches it."""
    from langchain.agents import create_agent

    from tests.langchain.policy import deterministic_model

    emu.set_responder(deterministic_model)
    tool = SiliconVisionTool(llm=llm, allowed_dirs=[EXAMPLE_IMAGES])
    agent = create_agent(llm, tools=[tool])
    result = agent.invoke(
        {"messages": [("user", "Use ask_image on 'red_circle.png': what colour is it?")]}
    )
    messages = result["messages"]
    tool_messages = [m for m in messages if isinstance(m, ToolMessage)]
    assert len(tool_messages) == 1 and "(red)" in str(tool_messages[0].content)
    requests = emu.requests
    # agent -> tool's vision request (with the image) -> agent's final answer
    assert [len(r.images) for r in requests] == [0, 1, 0]
    assert [bool(r.body.get("tools")) for r in requests] == [True, False, True]


def test_a_fetching_llm_has_the_tool_fetch_through_the_guard(emu: LocalSiliconCloud) -> None:
    """fetch_urls=True: the tool fetches the URL itself, through the core's SSRF guard
    with its own settings; the llm never fetches an agent's URL unchecked."""
    fetching = ChatSiliconVision(**emulator_params(model=QWEN, fetch_urls=True))
    url = emu.add_file("green.png", make_image((20, 20), "green"))  # on 127.0.0.1
    refused = call(SiliconVisionTool(llm=fetching), image=url, question="Colour?")
    assert refused.status == "error" and "loopback" in str(refused.content)
    assert emu.file_requests == [] and emu.requests == []
    trusted = SiliconVisionTool(llm=fetching, allow_private_urls=True)
    message = call(trusted, image=url, question="Colour?")
    assert message.status == "success" and "(green)" in str(message.content)
    request = emu.last_request
    assert request is not None and [i.source for i in request.images] == ["data"]
    assert len(emu.file_requests) == 1  # fetched once, by the tool
