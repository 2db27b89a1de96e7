"""release_memory() gives freed heap pages back to the OS (issue 15's soak)."""

import ctypes
import ctypes.util

import pytest

from spacy_bertprod import memory


def rss_mib() -> float:
    with open("/proc/self/status", encoding="utf8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(memory._malloc_trim() is None, reason="C library has no malloc_trim (not glibc)")
def test_release_memory_returns_freed_heap_pages():
    """Blocks below the mmap threshold come from the heap; freeing all but
    the last keeps the heap's top pinned, so the pages stay resident until
    a trim hands them back."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block = 64 * 1024
    blocks = []
    for _ in range(1600):  # 100 MiB, touched so that it is resident
        pointer = libc.malloc(block)
        ctypes.memset(pointer, 1, block)
        blocks.append(pointer)
    for pointer in blocks[:-1]:
        libc.free(pointer)
    held = rss_mib()
    assert memory.release_memory() is True
    released = held - rss_mib()
    libc.free(blocks[-1])
    assert released > 50, f"release_memory() returned {released:.1f} MiB of ~100 MiB freed"


def test_release_memory_without_malloc_trim(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_memory() is False
