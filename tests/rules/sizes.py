"""The image sizes the rules are checked over: edges, primes, extreme ratios, random.

Deterministic (a fixed seed), about 4,500 (width, height) pairs from 1 to 12,000
pixels a side: every pair of a list of edge values (1-pixel sides, the multiples of
14/28/32 and the tile sizes 384/448/640 and their neighbours, halves where rounding
ties, primes), aspect ratios around the processors' 200:1 limit, and log-uniform
random sizes with aspect ratios up to 210:1 both ways.
"""

from __future__ import annotations

import math
import random
from functools import cache

MAX_SIDE = 12_000

EDGES = (
    1, 2, 3, 7, 13, 14, 15, 27, 28, 29, 31, 32, 33, 42, 48, 56, 70, 97, 127, 191, 256,
    383, 384, 385, 447, 448, 449, 509, 639, 640, 641, 767, 896, 1009, 1024, 1036, 1152,
    1344, 1920, 2048, 3001, 3584, 4096, 4099, 6000, 7919, 8192, 11987, 12000,
)  # fmt: skip
PRIMES = (2, 5, 11, 17, 53, 101, 211, 499, 997, 1999, 4001, 6007, 9973, 11003)


@cache
def size_grid() -> tuple[tuple[int, int], ...]:
    sizes: set[tuple[int, int]] = set()
    values = sorted(set(EDGES + PRIMES))
    sizes.update((w, h) for w in values for h in values)
    for short in (1, 2, 3, 5, 14, 28, 29, 57, 60):
        for ratio in (150, 199, 199.9, 200, 200.5, 201, 250):
            long = min(MAX_SIDE, round(short * ratio))
            sizes.update({(long, short), (short, long)})
    rng = random.Random(20261201)
    while len(sizes) < 4500:
        long = round(math.exp(rng.uniform(0, math.log(MAX_SIDE))))
        short = max(1, round(long / math.exp(rng.uniform(0, math.log(210)))))
        sizes.add((long, short) if rng.random() < 0.5 else (short, long))
    return tuple(sorted(sizes))
