"""Hand memory the allocator keeps back to the operating system.

glibc's malloc raises its mmap threshold whenever a large block is freed, so
after a few batches torch's activation buffers come from the heap, and freed
heap pages stay mapped: a long-running process's RSS climbs with every new mix
of document lengths although nothing is kept (bench/soak.py measured about
20 MiB per 1,000 documents, all of it returned by one trim). Loops that run
for hours (servers, batch jobs, the soak) call `release_memory()` between
batches; it costs well under a millisecond per call on a warm heap.
"""

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Optional


@lru_cache(maxsize=1)
def _malloc_trim() -> Optional[ctypes._CFuncPtr]:  # type: ignore[name-defined]
    """glibc's malloc_trim, or None on other C libraries (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_memory() -> bool:
    """Return freed heap pages to the OS; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
