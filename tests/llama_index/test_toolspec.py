"""SiliconVisionToolSpec: the untrusted-input guards, and what reaches the model."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from llama_index_siliconvision import SiliconVision, SiliconVisionToolSpec
from siliconvision.testing import LocalSiliconCloud
from tests.imaging import make_image


def public_dns(host: str, port: int) -> Iterable[str]:
    return ["93.184.215.14"]  # a public address, whatever the name


def private_dns(host: str, port: int) -> Iterable[str]:
    return ["10.1.2.3"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "red.png").write_bytes(make_image((640, 480), "red"))
    (folder / "notes.png").write_bytes(b"these are notes, not pixels")
    (tmp_path / "secret.png").write_bytes(make_image(color="black"))
    return folder


def test_tool_list_has_sync_and_async_ask_image(llm: SiliconVision) -> None:
    (tool,) = SiliconVisionToolSpec(llm).to_tool_list()
    assert tool.metadata.name == "ask_image"
    assert "Answer a question about one image" in tool.metadata.description
    assert set(tool.metadata.get_parameters_dict()["properties"]) == {"image", "question"}
    assert tool.fn is not None and tool.async_fn is not None


def test_a_file_inside_the_allowed_dirs_is_sent(
    llm: SiliconVision, emu: LocalSiliconCloud, photos: Path
) -> None:
    spec = SiliconVisionToolSpec(llm, allowed_dirs=[photos], detail="low")
    answer = spec.ask_image(str(photos / "red.png"), "What colour?")
    assert answer.startswith("I see 1 image.")
    req = emu.last_request
    assert req is not None
    assert [(i.width, i.height, i.color_name, i.detail, i.source) for i in req.images] == [
        (597, 448, "red", "low", "data")
    ]
    assert spec.ask_image("red.png", "Again?").startswith("I see 1 image.")  # relative name


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("{photos}/../secret.png", "outside the allowed directories"),
        ("/etc/passwd", "outside the allowed directories"),
        ("{photos}/missing.png", "no such file"),
        ("file:///etc/passwd", "give a local file path or an http(s) URL"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("{loopback}", "loopback"),
        ("http://metadata.internal/x.png", "local or internal name"),
    ],
)
def test_refusals_are_readable_and_send_nothing(
    llm: SiliconVision, emu: LocalSiliconCloud, photos: Path, image: str, reason: str
) -> None:
    loopback = emu.add_file("red.png", make_image(color="red"))
    spec = SiliconVisionToolSpec(llm, allowed_dirs=[photos])
    answer = spec.ask_image(image.format(photos=photos, loopback=loopback), "What is it?")
    assert answer.startswith("Cannot answer: refused")
    assert reason in answer
    assert emu.requests == []


def test_symlink_out_of_the_allowed_dir_is_refused(
    llm: SiliconVision, emu: LocalSiliconCloud, photos: Path
) -> None:
    os.symlink(photos.parent / "secret.png", photos / "link.png")
    answer = SiliconVisionToolSpec(llm, allowed_dirs=[photos]).ask_image("link.png", "?")
    assert "outside the allowed directories" in answer
    assert emu.requests == []


def test_local_files_are_off_without_allowed_dirs(
    llm: SiliconVision, emu: LocalSiliconCloud, photos: Path
) -> None:
    answer = SiliconVisionToolSpec(llm).ask_image(str(photos / "red.png"), "?")
    assert "reading local files is disabled" in answer
    assert emu.requests == []


def test_not_an_image_is_a_readable_error(
    llm: SiliconVision, emu: LocalSiliconCloud, photos: Path
) -> None:
    answer = SiliconVisionToolSpec(llm, allowed_dirs=[photos]).ask_image("notes.png", "?")
    assert answer.startswith("Cannot answer: image <bytes of")
    assert "not an image" in answer
    assert emu.requests == []


def test_empty_question_is_refused(
    llm: SiliconVision, emu: LocalSiliconCloud, photos: Path
) -> None:
    answer = SiliconVisionToolSpec(llm, allowed_dirs=[photos]).ask_image("red.png", "  ")
    assert answer == "Cannot answer: question must be a non-empty string"
    assert emu.requests == []


def test_public_urls_pass_as_urls(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    url = emu.serve_url("https://photos.example.com/cat.png", make_image(color="orange"))
    spec = SiliconVisionToolSpec(llm, resolver=public_dns)
    assert "(orange)" in spec.ask_image(url, "What colour?")
    req = emu.last_request
    assert req is not None
    assert req.body["messages"][0]["content"][0]["image_url"]["url"] == url

    refused = SiliconVisionToolSpec(llm, resolver=private_dns).ask_image(url, "?")
    assert "resolves to 10.1.2.3, a private address" in refused
    assert len(emu.requests) == 1


def test_private_urls_only_when_allowed(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    url = emu.add_file("pink.png", make_image(color="pink"))
    assert "loopback" in SiliconVisionToolSpec(llm).ask_image(url, "?")
    answer = SiliconVisionToolSpec(llm, allow_private_urls=True).ask_image(url, "?")
    assert "(pink)" in answer
    req = emu.last_request
    assert req is not None and req.images[0].source == "url"


async def test_async_ask_image(llm: SiliconVision, emu: LocalSiliconCloud, photos: Path) -> None:
    spec = SiliconVisionToolSpec(llm, allowed_dirs=[photos], model="Qwen/Qwen2.5-VL-7B-Instruct")
    answer = await spec.aask_image("red.png", "What colour?")
    assert "(red)" in answer
    req = emu.last_request
    assert req is not None and req.model == "Qwen/Qwen2.5-VL-7B-Instruct"
    refused = await spec.aask_image("/etc/hostname", "?")
    assert refused.startswith("Cannot answer: refused path")
    assert len(emu.requests) == 1


def test_the_tool_uses_the_llms_settings(
    make_llm: Callable[..., SiliconVision], emu: LocalSiliconCloud, photos: Path
) -> None:
    llm = make_llm(max_tokens=77, temperature=0.2, additional_kwargs={"repetition_penalty": 1.1})
    SiliconVisionToolSpec(llm, allowed_dirs=[photos]).ask_image("red.png", "?")
    req = emu.last_request
    assert req is not None
    body = req.body
    assert (body["max_tokens"], body["temperature"], body["repetition_penalty"]) == (77, 0.2, 1.1)


async def test_a_fetching_llm_has_the_tool_fetch_through_the_guard(
    emu: LocalSiliconCloud,
) -> None:
    """The issue's second report: with fetch_urls=True the LLM fetched agent-chosen URLs
    with no SSRF check on redirects. Now the tool fetches through the core's guard, with
    its own resolver and allow_private_urls, exactly as the LangChain tool does."""
    fetching = SiliconVision(
        api_key=emu.api_key, base_url=emu.base_url, max_retries=0, fetch_urls=True
    )
    url = emu.add_file("green.png", make_image((20, 20), "green"))  # on 127.0.0.1
    spec = SiliconVisionToolSpec(fetching)
    for answer in (spec.ask_image(url, "Colour?"), await spec.aask_image(url, "Colour?")):
        assert answer.startswith("Cannot answer:") and "loopback" in answer
    resolved: list[str] = []

    def rebinding_dns(host: str, port: int) -> Iterable[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    named = SiliconVisionToolSpec(fetching, resolver=rebinding_dns)
    answer = named.ask_image("http://images.example.com/green.png", "Colour?")
    assert "resolves to 127.0.0.1" in answer and resolved == ["images.example.com"]
    assert emu.file_requests == [] and emu.requests == []
    trusted = SiliconVisionToolSpec(fetching, allow_private_urls=True)
    assert "(green)" in trusted.ask_image(url, "Colour?")
    request = emu.last_request
    assert request is not None and [i.source for i in request.images] == ["data"]
    assert len(emu.file_requests) == 1  # fetched once, by the tool
