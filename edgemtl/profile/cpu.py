"""What the host CPU can do for int8: the SIMD extensions that decide int8 speed and accuracy."""

from __future__ import annotations

import platform

WANTED = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_features() -> list[str]:
    """The SIMD extensions that decide int8 speed (VNNI/AMX: int8 dot products; AVX2 alone: none)."""
    try:
        flags = next(
            line.split(":", 1)[1].split()
            for line in open("/proc/cpuinfo")
            if line.startswith(("flags", "Features"))
        )
    except (OSError, StopIteration):
        return []
    return [f for f in WANTED if f in flags]


def x86_without_vnni() -> bool:
    """True on x86 hosts whose int8 kernels multiply uint8 x int8 pairs with VPMADDUBSW, which
    saturates the int16 sum of two products (no AVX-VNNI / AVX512-VNNI / AMX). ONNX Runtime's
    U8S8 kernels then lose accuracy unless weights use 7 bits (``reduce_range``)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    feats = set(cpu_features())
    return not feats & {"avx512_vnni", "avx_vnni", "amx_int8"}
