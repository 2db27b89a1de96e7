"""release_memory() gives freed heap pages back to the OS."""

import ctypes
import ctypes.util
import subprocess
import sys

import pytest

from spacy_bertprod import memory


def rss_mib() -> float:
    with open("/proc/self/status", encoding="utf8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


GLIBC = pytest.mark.skipif(memory._libc() is None, reason="the C library is not glibc")


@GLIBC
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
    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.release_memory() is False


#: frees a 1 MiB block (glibc then raises its mmap threshold to 1 MiB), then
#: allocates 100 MiB in 512 KiB blocks and frees all but the last; prints the
#: MiB still resident
FRAGMENT = """
import ctypes, ctypes.util, importlib.util, sys
spec = importlib.util.spec_from_file_location("memory", sys.argv[2])  # not the package: no torch import
memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory)
if sys.argv[1] == "pin":
    assert memory.pin_mmap_threshold() is True
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1]) / 1024
libc.free(libc.malloc(1 << 20))
start = rss()
blocks = [libc.malloc(512 << 10) for _ in range(200)]
for b in blocks:
    ctypes.memset(b, 1, 512 << 10)
for b in blocks[:-1]:
    libc.free(b)
print(rss() - start)
"""


def held_after_free(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", FRAGMENT, mode, memory.__file__], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@GLIBC
def test_pin_mmap_threshold_keeps_freed_buffers_out_of_the_heap():
    """Without the pin, glibc's moving threshold puts the 512 KiB blocks in
    the heap, and the freed ones stay resident behind the last; pinned, each
    block has its own mapping and goes back to the OS when freed."""
    assert held_after_free("default") > 50
    assert held_after_free("pin") < 10


def test_pin_mmap_threshold_without_glibc(monkeypatch):
    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.pin_mmap_threshold() is False
