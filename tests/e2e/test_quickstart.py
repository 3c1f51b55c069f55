"""The demo a new user runs first: ``examples/quickstart.py`` without a key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
KEY_VARS = ("SILICONFLOW_API_KEY", "SILICONCLOUD_API_KEY", "SILICONFLOW_BASE_URL")


def test_quickstart_runs_offline_against_the_local_emulator(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    proc = subprocess.run(
        [sys.executable, str(QUICKSTART)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # the script finds its images wherever it is run from
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("No SILICONFLOW_API_KEY set: using the local emulator")
    assert "I see 3 images." in out
    # The streamed answer describes each sample image, in the order they were sent.
    chart = out.index("Image 1: 480x320 PNG, detail high")
    receipt = out.index("Image 2: 300x400 PNG, detail high")
    disc = out.index("Image 3: 256x256 PNG, detail high, dominant colour #dc1414 (red).")
    question = out.index('Text: "Which quarter sold most')
    assert chart < receipt < disc < question
    assert "prompt +" in out and "completion tokens]" in out
    assert proc.stderr == ""
