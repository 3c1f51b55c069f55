"""The README's offline snippets run as written (from the repository root)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "```sh"
    assert lines[1].startswith("make demo") and lines[2].startswith("make test")
    assert lines[3] == "```"


@pytest.mark.parametrize(
    "block",
    [b for b in _python_blocks() if "LocalSiliconCloud() as emu" in b],
)
def test_offline_snippets_run(block: str, capsys: pytest.CaptureFixture[str]) -> None:
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme_snippet"})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "I see 1 image." in out
    assert "SiliconCloud HTTP 429" in out
    assert "256 256 PNG red" in out
