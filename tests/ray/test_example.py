"""``examples/ray_caption.py`` runs offline against the emulator (on the shared local Ray:
the example starts its own only when none is running)."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ray_caption.py"


def test_folder_to_parquet_to_a_langchain_index_and_resumed(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = runpy.run_path(str(EXAMPLE), run_name="ray_caption_example")["main"]
    out_dir = tmp_path / "captions"
    assert main(["--out", str(out_dir)]) == "red_circle.png"
    out = capsys.readouterr().out
    assert "using the local emulator" in out
    assert "captioned 4 image(s) this run (0 earlier run(s)" in out
    assert "emulator: 4 accepted, 0 refused (429)" in out
    assert "best match for 'a red circle': red_circle.png" in out
    assert ray_local.is_initialized()  # the shared Ray was used, not shut down
    # Rerun: everything is in the first run's Parquet, nothing is sent again.
    assert main(["--out", str(out_dir)]) == "red_circle.png"
    out = capsys.readouterr().out
    assert "captioned 0 image(s) this run (1 earlier run(s)" in out
    assert "emulator: " not in out  # the second emulator saw no chat request at all
    assert len(list(out_dir.glob("run-*"))) == 1  # (an empty run writes nothing)
