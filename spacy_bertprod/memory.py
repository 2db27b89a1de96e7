"""Keep a long-running process's memory where its live objects are.

glibc's malloc raises its mmap threshold (up to 32 MiB) whenever a large
block is freed, so after a few batches torch's activation buffers come from
the heap instead of their own mappings, and the holes they leave fragment it:
a process's RSS then climbs with every new mix of document lengths although
nothing is kept (bench/soak.py measured about 20 MiB per 1,000 documents).
Long-running loops (servers, batch jobs, the soak) call `pin_mmap_threshold()`
once at start, so large buffers are mapped and unmapped again, and
`release_memory()` between batches, which hands freed heap pages back. Both
do nothing where the C library is not glibc.
"""

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any, Optional

#: glibc's mallopt parameter for the mmap threshold (malloc.h)
M_MMAP_THRESHOLD = -3
#: glibc's default threshold, fixed instead of moving with each free
DEFAULT_MMAP_THRESHOLD = 128 * 1024


@lru_cache(maxsize=1)
def _libc() -> Optional[Any]:
    """glibc, or None on other C libraries (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    libc.malloc_trim.restype = ctypes.c_int
    libc.mallopt.restype = ctypes.c_int
    return libc


def release_memory() -> bool:
    """Return freed heap pages to the OS; False where the C library cannot."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def pin_mmap_threshold(size: int = DEFAULT_MMAP_THRESHOLD) -> bool:
    """Serve every block of `size` bytes or more from its own mapping, for
    the rest of the process (the threshold no longer moves); False where the
    C library cannot."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, size))
