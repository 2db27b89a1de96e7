"""How many threads the encoders compute on, in this process and in forked
workers: torch's intra-op threads where torch is loaded (ONNX Runtime
follows them), else ONNX Runtime's own count. `set_threads` is what `serve
--threads` and the Ray actors call; importing this module registers the
fork hook."""

import os
import sys

from .extras import torch_installed

#: Intra-op threads of ONNX Runtime sessions where torch is not loaded: 0 is
#: ONNX Runtime's default (one per physical core), 1 in a forked worker.
_threads_without_torch = 0


def _one_thread_after_fork() -> None:
    """In a forked child (`nlp.pipe(n_process=...)` under the "fork" start
    method), run the encoders on one thread: GNU OpenMP's thread pool does
    not survive fork, so once the parent has predicted, a multi-threaded
    torch op in the child waits forever. Each process is one worker anyway."""
    global _threads_without_torch
    _threads_without_torch = 1
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)


def set_threads(threads: int) -> None:
    """Threads of the encoders a process loads after this call: torch's
    intra-op threads where torch is installed (ONNX Runtime follows them),
    else ONNX Runtime's own; 0 leaves them as they are."""
    global _threads_without_torch
    if not threads:
        return
    _threads_without_torch = threads
    if torch_installed():
        import torch

        torch.set_num_threads(threads)


def intra_op_threads() -> int:
    """The threads an ONNX session computes on: torch's thread count where
    torch is loaded (so `torch.set_num_threads` sets both runtimes), else
    ONNX Runtime's own default."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else _threads_without_torch
