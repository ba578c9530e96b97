"""Smoke test of the benchmark suite: every section runs in a tiny mode and returns well-formed ratios.

No timing is asserted (the machine is shared and timings are noisy): the tests check that each section's
result has the documented shape, that every ratio is a positive finite number equal to candidate / baseline,
and that the focal-loss prototype the loss section proposes agrees with ``focal_loss``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `bench` is a folder of scripts at the repo root, not an installed package
    sys.path.insert(0, str(REPO))

from bench import (  # noqa: E402
    bench_cli,
    bench_fused,
    bench_launchers,
    bench_loss,
    bench_startup,
    bench_sweep,
    bench_train,
    run_all,
)
from bench.common import check, find_cifar_root, section, write_atomic  # noqa: E402
from focalbench.data import SplitData  # noqa: E402


def assert_section_ok(result: dict, n_checks: int) -> None:
    assert result["status"] == "ok", result["reason"]
    assert len(result["checks"]) == n_checks
    json.dumps(result)  # the run_all report stores it as JSON
    for c in result["checks"]:
        for key in ("baseline", "candidate", "ratio"):
            assert math.isfinite(c[key]) and c[key] > 0, (c["name"], key, c[key])
        assert c["met"] in (True, False, None)


def tiny_images(n_train: int = 96) -> SplitData:
    """Random 32x32 uint8 images of 10 classes, shaped like CIFAR-10-LT."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(n_train) % 10
    return SplitData(
        name="cifar10_lt", kind="image", n_classes=10, class_names=[str(c) for c in range(10)],
        train_x=x, train_y=y, val_x=x[:0], val_y=y[:0], test_x=x[:32], test_y=y[:32],
        train_counts=[n_train // 10] * 10, longtail_counts=[n_train // 10] * 10,
        mean=torch.full((1, 3, 1, 1), 0.5), std=torch.full((1, 3, 1, 1), 0.25), augment=True, info={},
    )  # fmt: skip


@pytest.fixture(scope="module")
def throughput() -> dict:
    return bench_train.run(data=tiny_images(), n_train=64, n_chunks=1)


def test_training_throughput_reports_both_precisions(throughput):
    assert_section_ok(throughput, n_checks=2)
    details = throughput["details"]
    for p, c in zip(bench_train.PRECISIONS, throughput["checks"], strict=True):
        assert c["ratio"] == pytest.approx(
            details[f"focalbench_{p}"]["images_per_s"] / details["reference"]["images_per_s"]
        )
        assert details[f"focalbench_{p}"]["images"] == 64  # one epoch of the tiny set, every image once
    assert details["flops_per_example"] > 0


def test_mfu_against_measured_peaks(throughput, tmp_path, monkeypatch):
    monkeypatch.setattr(bench_train, "RESULTS_DIR", tmp_path)
    result = bench_train.run_mfu(throughput, quick=True, data=bench_train.take(tiny_images(), 64))
    assert_section_ok(result, n_checks=2)
    assert "self CPU" in (tmp_path / "bench_profile.txt").read_text()
    for p in bench_train.PRECISIONS:
        assert 0 < result["details"][p]["mfu_of_peak"] <= result["details"][p]["mfu_of_matmul"] + 1e-12


@pytest.mark.parametrize("native", [True, False])
def test_the_bf16_peak_times_the_convolutions_training_runs(monkeypatch, native):
    """On a CPU without native bf16, training's convolutions are the rounded fp32 products
    (RoundedBf16Conv2d): the peak must time those, not PyTorch's 10x slower bf16 fallback (a "peak" that
    once stood at a fifth of the achieved rate, an MFU of 449 %)."""
    from focalbench import hardware
    from focalbench.training import bf16_conv

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    calls = []
    apply = bf16_conv.RoundedBf16Conv2d.apply
    monkeypatch.setattr(bf16_conv.RoundedBf16Conv2d, "apply", lambda *a: calls.append(1) or apply(*a))
    assert bench_train.conv_peak("bf16", batch=2, channels=8, repeats=1, device=torch.device("cpu")) > 0
    assert bool(calls) is not native
    calls.clear()
    bench_train.conv_peak("fp32", batch=2, channels=8, repeats=1, device=torch.device("cpu"))
    assert not calls


def test_a_slow_matmul_is_timed_at_a_size_that_fits_the_budget():
    fast, slow = 1e11, 3e8  # FLOP/s: a native kernel, PyTorch's bf16 fallback on an AVX2 CPU
    assert bench_train.matmul_size(fast, 2048, 1.0) == 2048  # 17 GFLOP in 0.17 s
    n = bench_train.matmul_size(slow, 2048, 1.0)
    assert 2 * n**3 / slow <= 1.0 < 2 * (2 * n) ** 3 / slow  # the largest halving within the budget
    assert bench_train.matmul_size(1.0, 2048, 1.0) == bench_train.MATMUL_PROBE  # never below the probe


def test_an_mfu_above_one_fails_its_check(throughput, tmp_path, monkeypatch):
    monkeypatch.setattr(bench_train, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(bench_train, "conv_peak", lambda *a, **k: 1.0)  # a "peak" far below any real rate
    monkeypatch.setattr(bench_train, "matmul_peak", lambda *a, **k: 1.0)
    result = bench_train.run_mfu(throughput, quick=True, data=bench_train.take(tiny_images(), 64))
    assert [c["met"] for c in result["checks"]] == [False, False]
    assert all("not a figure" in n for n in result["notes"][:2])


def test_mfu_is_skipped_when_throughput_was():
    skipped = section(bench_train.SECTION, reason="no data")
    result = bench_train.run_mfu(skipped)
    assert result["status"] == "skipped" and "no data" in result["reason"]


def test_loss_section_small_inputs():
    result = bench_loss.run(quick=True, n=256, c=10)
    assert_section_ok(result, n_checks=2 * len(bench_loss.GAMMAS))
    for gamma in ("0", "0.5", "2"):
        assert result["details"]["per_gamma"][gamma]["finite_at_extremes"] is True


def test_saved_bytes_counts_what_autograd_keeps():
    logits, target = bench_loss.make_inputs(128, 10, torch.device("cpu"))
    # cross_entropy saves its log-softmax output ([128, 10] float32), the targets ([128] int64) and
    # nll_loss's total weight (a float32 scalar).
    assert (
        bench_loss.saved_bytes(torch.nn.functional.cross_entropy, logits, target)
        == 128 * 10 * 4 + 128 * 8 + 4
    )


@pytest.mark.slow
def test_sweep_section_tiny_sweep(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_sweep, "RESULTS_DIR", tmp_path)
    result = bench_sweep.run(overrides=bench_sweep.TINY_OVERRIDES, profile=False)
    assert_section_ok(result, n_checks=2)
    assert result["details"]["sequential"]["runs"] == 2 and result["details"]["jobs_2"]["runs"] == 2


def test_fused_section_tiny():
    result = bench_fused.run(
        quick=True,
        cifar=tiny_images(),
        mlp_extra=("epochs=1", "data.n_max=100"),
        image_steps=1,
        image_batch=16,
    )
    assert_section_ok(result, n_checks=3)
    assert result["details"]["mlp"]["members"] == 12
    assert result["details"]["resnet32"]["members"] == 8


@pytest.mark.slow
@pytest.mark.slow
def test_launchers_section_tiny():
    grid = ("gamma=0,2", "seed=0", "epochs=1", "data.n_max=200", "data.test_per_class=50")
    result = bench_launchers.run(quick=True, grid=grid)  # one round, no cnn grid
    assert_section_ok(result, n_checks=1)
    default = result["details"]["default"]
    assert default["commands"]["unfused"].endswith("--jobs 2 --name bench --max-fuse 1")
    assert len(default["fused_s"]) == len(default["unfused_s"]) == 1
    assert default["ratio"] == pytest.approx(default["fused_s"][0] / default["unfused_s"][0])
    assert result["details"]["cpu"] and any("CPU:" in note for note in result["notes"])


def test_startup_section_tiny():
    tiny = ("data.n_max=100", "data.test_per_class=20", "epochs=1")
    # one timed round, no warm-up: the section's plumbing, not its figures (3 processes instead of 9)
    result = bench_startup.run(
        quick=True, sweep=("gamma=0,2", "seed=0", *tiny), run_args=tiny, rounds=1, warmup=0
    )
    assert_section_ok(result, n_checks=2)


def test_cli_startup_section():
    assert_section_ok(bench_cli.run(quick=True), n_checks=1)


def test_find_cifar_root_explains_a_missing_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("FOCALBENCH_DATA", str(tmp_path))
    monkeypatch.setattr("bench.common.REPO_ROOT", tmp_path / "repo")
    root, reason = find_cifar_root()
    assert root is None and "FOCALBENCH_DATA" in reason and str(tmp_path) in reason


def test_report_table_and_atomic_write(tmp_path):
    ok = section("s", [check("f", "base", 2.0, "cand", 6.0, "x", ">= 3x", True)])
    skipped = section("t", reason="no CIFAR-10")
    rows = run_all.table_rows([ok, skipped])
    assert rows[0][4] == "3x" and rows[0][6] == "yes"
    assert "no CIFAR-10" in rows[1][1]
    path = tmp_path / "out" / "bench.md"
    write_atomic(path, "hello\n")
    assert path.read_text() == "hello\n" and list(path.parent.iterdir()) == [path]


def test_merge_replaces_only_the_rerun_sections():
    env = {"cpu_model": "cpu A", "date": "d1", "load_average_start": [0], "load_average_end": [0],
           "device": "cpu", "cpu_cores": 2, "torch": "2", "total_seconds": 1}  # fmt: skip
    stored = {
        "environment": env,
        "quick": False,
        "sections": [{**section(k), "key": k, "v": 1} for k in ("data", "train", "mfu", "loss")],
    }
    rerun_env = {**env, "date": "d2"}
    merged = run_all.merge_into(stored, [{**section("mfu"), "key": "mfu", "v": 2}], rerun_env)
    assert [(s["key"], s["v"]) for s in merged["sections"]] == [
        ("data", 1),
        ("train", 1),
        ("mfu", 2),
        ("loss", 1),
    ]
    assert merged["environment"] == env and merged["reruns"] == [{"sections": ["mfu"], **rerun_env}]
    assert "--only mfu --merge` on d2" in run_all.markdown_report(
        merged["sections"], env, False, merged["reruns"]
    )
    with pytest.raises(ValueError, match="cpu A"):
        run_all.merge_into(stored, [], {**env, "cpu_model": "cpu B"})
