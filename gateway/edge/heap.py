"""The worker's garbage collector, settled once the gateway has started.

What start made (schema, policy, pools, parsed documents) lives as long as the
worker: frozen, the collector's full passes no longer walk it, and those passes
were what stalled a request now and then (the p99 tail).

A request allocates several hundred container objects (rows, dicts of the
response, the plan's per-request state, asyncio's tasks and futures) and almost
all of them are freed by reference counting when it ends. At CPython's default
threshold (a young collection every 700 net allocations) a worker ran a young
collection every few requests and an older one every few dozen, and those
passes cost more than a tenth of a counter look-up's CPU (see bench/README.md).
Collecting the young generation every ``YOUNG_THRESHOLD`` allocations instead
finds the same cycles, later: what it keeps in between is a few megabytes at
most, and the memory soak of ``make bench`` watches that it stays flat.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle"]

#: Net allocations of container objects between two collections of the young generation.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Collect, freeze what is left, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
