"""The README's token figures are what the code prints (its comments say the value)."""

from __future__ import annotations

import re
from pathlib import Path

from siliconvision import estimate_image_tokens

README = Path(__file__).resolve().parents[2] / "README.md"
# e.g.  print(estimate_image_tokens(1024, 1024, model="..."))  # 1369: 1036x1036
_LINE = re.compile(r"^print\((estimate_image_tokens\(.*\))\)\s+# (\w+)", re.M)


def test_readme_estimates_are_what_the_rules_give() -> None:
    found = _LINE.findall(README.read_text(encoding="utf-8"))
    assert len(found) >= 4
    for call, expected in found:
        value = eval(call, {"estimate_image_tokens": estimate_image_tokens})
        assert str(value) == expected, call
