"""One candidate preparing one image, in a fresh process; prints its memory as JSON.

``python -m benchmarks._prep_memory_child CANDIDATE IMAGE DETAIL WARM_IMAGE``

As ``_memory_child`` does for whole requests: the candidate first downsizes a small
image (its libraries, and libvips' threads, loaded), then the peak RSS is reset
(Linux ``/proc/self/clear_refs``) and the big image is prepared from its path.
Reported: RSS before, peak RSS during, RSS after (bytes).
"""

from __future__ import annotations

import gc
import json
import resource
import sys
from pathlib import Path

from ._candidates import candidate_by_key
from ._memory_child import _reset_peak, _status


def main(argv: list[str]) -> None:
    key, image, detail, warm = argv
    candidate = candidate_by_key(key)
    candidate.run(Path(warm), "low")  # downsized: every step of the pipeline loaded
    gc.collect()
    before = _status("VmRSS")
    exact = _reset_peak()
    outcome = candidate.run(Path(image), detail)
    peak = _status("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gc.collect()
    after = _status("VmRSS")
    print(
        json.dumps(
            {
                "before": before,
                "peak": peak,
                "after": after,
                "exact": exact,
                "byte_size": outcome.byte_size,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
