"""The CPU facts focalbench acts on: model name and native bf16 (focalbench.hardware)."""

from __future__ import annotations

import pytest

from focalbench import hardware
from focalbench.hardware import CpuInfo, parse_cpuinfo

XEON_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu
"""
ZEN2 = """processor\t: 0
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 avx avx2 fma
"""
ZEN4 = "model name\t: AMD EPYC 9B14\nflags\t\t: avx2 avx512f avx512_bf16 avx512_vnni\n"
GRAVITON3 = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd sve bf16 i8mm\nCPU part\t: 0xd40\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd atomics\nCPU part\t: 0xd0c\n"


@pytest.mark.parametrize(
    "text, model, native",
    [
        (XEON_AMX, "Intel(R) Xeon(R) Platinum 8480+", ["avx512_bf16", "amx_bf16"]),
        (ZEN2, "AMD EPYC 7B12", []),
        (ZEN4, "AMD EPYC 9B14", ["avx512_bf16"]),
        (GRAVITON3, "0xd40", ["bf16"]),
        (GRAVITON2, "0xd0c", []),
        ("", "unknown", []),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(text, model, native):
    info = parse_cpuinfo(text)
    assert info.model == model
    assert info.native_bf16_flags == native
    assert info.native_bf16 is bool(native)


def test_only_the_first_processor_counts():
    # the second processor of XEON_AMX lists no bf16 flag; the first one's line is the one read
    assert parse_cpuinfo(XEON_AMX).native_bf16


def test_the_description_names_the_model_and_the_bf16_support():
    assert parse_cpuinfo(ZEN4).describe() == "AMD EPYC 9B14 (native bf16: avx512_bf16)"
    assert parse_cpuinfo(ZEN2).describe() == "AMD EPYC 7B12 (no native bf16)"


def test_an_unreadable_cpuinfo_means_no_native_bf16(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "missing")
    hardware.cpu_info.cache_clear()
    try:
        assert hardware.cpu_has_native_bf16() is False
        assert "no native bf16" in hardware.cpu_model()
    finally:
        hardware.cpu_info.cache_clear()


def test_this_machine_is_described(monkeypatch):
    info = hardware.cpu_info()
    assert isinstance(info, CpuInfo) and info.model
    assert hardware.cpu_model() == info.describe()
