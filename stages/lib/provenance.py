"""What a training run really ran on: the hardware, the precision it could use, the versions.

The train stage chooses its precision here and records the result beside the per-epoch log, so
`dvc exp show` and `dvc metrics diff` tell a float32 fallback or a GPU run from the committed one.
"""

import platform
from importlib.metadata import version
from pathlib import Path

import keras

from stages.lib import backend

CPUINFO = Path("/proc/cpuinfo")


def cpu():
    """The CPU's model name and the flags that decide bfloat16 speed; Linux only, else unknown."""
    try:
        info = CPUINFO.read_text()
    except OSError:
        info = ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), platform.processor() or "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines()
                      if line.startswith("flags")), []))
    return {
        "name": name,
        "bfloat16": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "avx512": "avx512f" in flags,
    }


def gpus_have_bfloat16(gpu_list):
    """bfloat16 tensor cores came with compute capability 8.0 (Ampere)."""
    return all(capability >= (8, 0) for _, capability in gpu_list)


def precision_policy(requested, gpu_list):
    """The requested policy where the hardware has it; float32 (with a note) where it has not."""
    if requested == "float32" or (requested == "mixed_float16" and gpu_list):
        return requested
    has_bfloat16 = gpus_have_bfloat16(gpu_list) if gpu_list else cpu()["bfloat16"]
    if requested == "mixed_bfloat16" and has_bfloat16:
        return requested
    print(f"train: no {requested.removeprefix('mixed_')} hardware here; training in float32")
    return "float32"


def device(gpu_list):
    """The device that trains: every GPU when there is one, else the CPU."""
    if gpu_list:
        names = sorted({name for name, _ in gpu_list})
        return {"type": "GPU", "name": ", ".join(names), "count": len(gpu_list),
                "bfloat16": gpus_have_bfloat16(gpu_list),
                "compute_capability": ", ".join(sorted({f"{major}.{minor}"
                                                        for _, (major, minor) in gpu_list}))}
    return {"type": "CPU", **cpu(), "count": 1}


def versions():
    return {
        "python": platform.python_version(),
        **backend.parts().versions(),
        "keras": keras.version(),
        "dvc": version("dvc"),
        "dvclive": version("dvclive"),
    }
