"""What the CPU can do: its model name and whether it computes bf16 natively. Torch-free.

Native bf16 on a CPU means instructions that multiply bf16 matrices directly:

- x86: ``avx512_bf16`` (AVX512-BF16, e.g. Intel Cooper Lake and later, AMD Zen 4 and later) or
  ``amx_bf16`` (Intel AMX tiles, Sapphire Rapids and later), read from the ``flags`` line of
  ``/proc/cpuinfo``;
- Arm: ``bf16`` in the ``Features`` line (Armv8.6 BF16, e.g. Neoverse V1/V2, Graviton 3).

Without them, PyTorch's bf16 matrix products on the CPU are emulated (converted to fp32 and back), and its bf16
convolution falls back to a slow path (10x fp32's time); focalbench then runs bf16 convolutions as fp32 products
rounded to bf16 (:mod:`focalbench.training.bf16_conv`), at about fp32's speed, and says so
(``precision=auto`` is fp32 on every CPU, see :func:`focalbench.identity.resolve_precision`). Where ``/proc/cpuinfo`` cannot be read (macOS, Windows) the
answer is "no native bf16": the safe side.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# Flags that mean bf16 matrix products run natively (see the module docstring).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name and its feature flags (lower case)."""

    model: str
    flags: frozenset[str]

    @property
    def native_bf16_flags(self) -> list[str]:
        """The flags present that give native bf16, in :data:`NATIVE_BF16_FLAGS` order."""
        return [f for f in NATIVE_BF16_FLAGS if f in self.flags]

    @property
    def native_bf16(self) -> bool:
        return bool(self.native_bf16_flags)

    def describe(self) -> str:
        """``"<model> (native bf16: amx_bf16, avx512_bf16)"`` or ``"<model> (no native bf16)"``: the line
        every benchmark and study records, because speed depends on both."""
        native = self.native_bf16_flags
        return f"{self.model} ({'native bf16: ' + ', '.join(native) if native else 'no native bf16'})"


def parse_cpuinfo(text: str) -> CpuInfo:
    """A :class:`CpuInfo` from the text of ``/proc/cpuinfo`` (the first processor's entries).

    The model is the ``model name`` line (x86) or, failing that, ``Model name``/``CPU part``/``Hardware``
    (Arm); the flags are the ``flags`` (x86) or ``Features`` (Arm) line. Missing lines give ``"unknown"``
    and no flags.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key and key not in fields:
            fields[key] = value.strip()
    model = next((fields[k] for k in ("model name", "hardware", "cpu part") if fields.get(k)), "unknown")
    flags = (fields.get("flags") or fields.get("features") or "").lower().split()
    return CpuInfo(model=model, flags=frozenset(flags))


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's :class:`CpuInfo` (read once per process)."""
    try:
        return parse_cpuinfo(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return CpuInfo(model=platform.processor() or platform.machine() or "unknown", flags=frozenset())


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (see the module docstring)."""
    return cpu_info().native_bf16


def cpu_model() -> str:
    """This CPU's :meth:`CpuInfo.describe` line."""
    return cpu_info().describe()
