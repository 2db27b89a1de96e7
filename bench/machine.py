"""Describe the machine a benchmark ran on."""

import os
import platform


def describe() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.node()} | {cpu} | {os.cpu_count()} cores | torch {torch.__version__} "
        f"({torch.get_num_threads()} threads) | {gpu} | Python {platform.python_version()}"
    )
