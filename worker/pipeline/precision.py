"""Which arithmetic the model runs in: the PRECISION setting resolved against this CPU and
the descriptor. TensorFlow-free (a fast test checks the choice without loading a model).

`auto` picks bfloat16 where the CPU computes it natively; else int8 on CPUs with VNNI, for
descriptors whose quality benchmarks held at int8 (INT8_HELD); else float32. Where the CPU has
bfloat16 units int8 is faster at batch 1 only (slower at a search's pair and the index's
batches): docs/performance.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from worker.core.settings import PRECISION_CHOICES, InvalidSetting

# Descriptors whose re-scan and look-alike benchmarks, on the held-out seed 11, stayed within
# 0.5 point of bfloat16 in every family, no verdict's precision down by more than 0.1 point
# (docs/quality.md, "int8"; the default since 2026-12-06).
INT8_HELD: frozenset[str] = frozenset({"grey-dir345-lw256-shape-colour-pattern-proportions"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags")
                     for word in line.split(":", 1)[1].split())


def has_bf16(flags: frozenset[str]) -> bool:
    return "avx512_bf16" in flags or "amx_bf16" in flags


# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA) at or above which it runs bfloat16 on the CPU's units
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10", "ALL", "DEFAULT")


def bf16_held_back(environ: Mapping[str, str]) -> str | None:
    """Why TensorFlow would not use the CPU's bfloat16 units under these environment
    variables (None where nothing holds them back): oneDNN capped below them, or turned off."""
    if environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false"):
        return "TF_ENABLE_ONEDNN_OPTS=0 turns oneDNN off"
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        cap = environ.get(name, "").strip()
        if cap and not cap.upper().startswith(_BF16_ISAS):
            return f"{name}={cap} keeps oneDNN below the bfloat16 units"
    return None


def has_vnni(flags: frozenset[str]) -> bool:
    """int8 dot products in one instruction (what XNNPACK's int8 kernels use)."""
    return "avx512_vnni" in flags or "avx_vnni" in flags or "amx_int8" in flags


def resolve_precision(setting: str, descriptor: str, flags: frozenset[str] | None = None,
                      environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """PRECISION setting -> ("float32" | "bfloat16" | "int8", why), for this descriptor.
    `flags` and `environ` default to this CPU's and this process's."""
    if setting not in PRECISION_CHOICES:  # a CLI's --precision (Settings checks PRECISION)
        raise InvalidSetting(f"PRECISION must be one of {', '.join(PRECISION_CHOICES)}, "
                             f"got {setting!r}")
    if setting != "auto":
        return setting, f"PRECISION={setting}"
    flags = cpu_flags() if flags is None else flags
    held = "held" if descriptor in INT8_HELD else "not validated"
    held_back = bf16_held_back(os.environ if environ is None else environ)
    if has_bf16(flags) and held_back is None:
        return "bfloat16", f"auto: the CPU has bfloat16 (int8 {held} for {descriptor})"
    # bfloat16 without its units is emulated: slower than float32 (docs/performance.md, int8)
    no_bf16 = f"the CPU has bfloat16 but {held_back}" if has_bf16(flags) else \
        "no bfloat16 on this CPU"
    if has_vnni(flags) and descriptor in INT8_HELD:
        return "int8", f"auto: {no_bf16}; it has VNNI, and int8 held the quality benchmarks"
    return "float32", f"auto: {no_bf16} (int8 {held} for {descriptor}, VNNI " \
                      f"{'present' if has_vnni(flags) else 'absent'})"
