"""Small helpers shared by the benchmark scripts: time and peak memory.

Peak memory is the process's peak resident set size (``ru_maxrss``), read
after each block: it only grows, so run one heavy step per process when the
step's own peak matters.  (tracemalloc would slow allocation-heavy code
several-fold and distort the timings.)
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def process_peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


@contextmanager
def measured(label: str) -> Iterator[None]:
    """Print wall time of the block and the process's peak RSS after it."""
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        print(
            f"{label:<50} {elapsed:8.2f} s   peak RSS {process_peak_rss_mib():8.0f} MiB", flush=True
        )


def timed(label: str, func: Callable[[], T]) -> T:
    """Run ``func`` inside :func:`measured` and return its result."""
    with measured(label):
        return func()
