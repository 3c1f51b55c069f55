"""One request carrying a big image, in a fresh process; prints its memory as JSON.

``python -m benchmarks._memory_child VARIANT IMAGE DETAIL SMALL_IMAGE BASE_URL API_KEY``

Everything the request needs is loaded first (a warm-up request with a small image),
then the peak RSS is reset (Linux ``/proc/self/clear_refs``) and one request with the
big image is made. Reported: RSS before, peak RSS during, RSS after (bytes).
"""

from __future__ import annotations

import gc
import json
import resource
import sys
from pathlib import Path

from ._variants import ImageArg, variant_by_key


def _status(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def main(argv: list[str]) -> None:
    key, image, detail, small, base_url, api_key = argv
    variant = variant_by_key(key)()
    variant.setup(base_url, api_key)
    variant.ask("What is this?", ImageArg(Path(small), detail))
    gc.collect()
    before = _status("VmRSS")
    exact = _reset_peak()
    variant.ask("What is this?", ImageArg(Path(image), detail))
    peak = _status("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gc.collect()
    after = _status("VmRSS")
    print(json.dumps({"before": before, "peak": peak, "after": after, "exact": exact}))


if __name__ == "__main__":
    main(sys.argv[1:])
