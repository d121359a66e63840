"""What the host CPU can do for int8 and bf16: the SIMD extensions that decide their speed and accuracy."""

from __future__ import annotations

import platform

# int8 dot products: avx512_vnni, avx_vnni, amx_int8 (x86), asimddp, i8mm (ARM); native bf16: avx512_bf16,
# amx_bf16 (x86), bf16 (ARM). Every speed figure states these (train.precision=auto reads the bf16 ones).
WANTED = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_int8",
    "amx_bf16",
    "asimddp",
    "i8mm",
    "bf16",
)


def cpu_features(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The SIMD extensions that decide int8 and bf16 speed (VNNI/AMX: int8 dot products, AVX512-BF16/
    AMX-BF16: native bf16; AVX2 alone: neither)."""
    try:
        flags = next(
            line.split(":", 1)[1].split() for line in open(cpuinfo) if line.startswith(("flags", "Features"))
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
