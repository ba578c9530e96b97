"""Training throughput and model FLOP utilisation (MFU) of focalbench's training step.

Throughput (:func:`run`): one epoch of ``model=cnn`` on CIFAR-10-LT rho=100 (``experiment=cifar_cpu`` with
``loss=ce``: batch 256, SGD), in images/s, for

- focalbench: :func:`focalbench.training.loop.train` itself (the real code path: batches built on the
  device by ``iter_train_batches``, channels_last, autocast, loss in float32, no host sync per step), once
  in fp32 and once in bf16 autocast, both channels_last; the figure is the loop's own ``train_time_s``,
  which excludes evaluation;
- the reference a user would otherwise write: a ``torchvision`` ``DataLoader`` (``num_workers=0``: extra
  workers only compete for the same cores on a small CPU box) over a per-sample ``Dataset`` with
  ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``; NCHW float32; the same
  model, batch size, optimiser and ``F.cross_entropy``.

Each pipeline has its own model (same seed) and first trains a few untimed warm-up steps (oneDNN builds its
kernels on first use). Then the epoch is cut into 4 slices, which the three pipelines take in turn
(reference slice 1, fp32 slice 1, bf16 slice 1, reference slice 2, ...), so that load from other processes
on a shared machine falls on all of them alike; each figure is the epoch's images over the summed time of its
slices. Target: focalbench >= 3x the reference.

MFU (:func:`run_mfu`): achieved training FLOP/s = 3 x ``flops_per_example`` (direct conv + matmul FLOPs of
the forward pass; backward counted as twice the forward) x images/s, against this machine's peak measured in
the same run, in the same precision and memory format, under the training loop's autocast (so that bf16 on a
CPU without native bf16 times the rounded convolutions training runs, not PyTorch's slow fallback): the faster
of a large matrix product and a large 3x3 convolution (forward). Target: >= 40 % of that peak; an MFU above
100 % fails the check, since its "peak" did not time training's kernels. A ``torch.profiler`` table of a few training steps (top
ops by self CPU time) goes to ``results/bench_profile.txt``.

Run alone: ``python bench/bench_train.py [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a script: make `bench` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_data import make_dataloader
from bench.common import RESULTS_DIR, check, find_cifar_root, median_time, section, write_atomic
from focalbench.config import compose
from focalbench.data import SplitData, load_data
from focalbench.models import build_model, flops_per_example
from focalbench.training.loop import autocast_context, train
from focalbench.training.runner import resolve_precision

SECTION = "training throughput"
MFU_SECTION = "model FLOP utilisation"
TARGET_SPEEDUP = 3.0
TARGET_MFU = 0.40
WARMUP_STEPS = 3
PRECISIONS = ("fp32", "bf16")


# ----------------------------------------------------------------------------------------------------------
# Config and data
# ----------------------------------------------------------------------------------------------------------


def compose_config(precision: str, root: str | None = None, extra: tuple[str, ...] = ()):
    """The composed run config: ``experiment=cifar_cpu loss=ce epochs=1`` in ``precision``, channels_last."""
    overrides = [
        "experiment=cifar_cpu",
        "loss=ce",
        "epochs=1",
        f"precision={precision}",
        "channels_last=true",
    ]
    if root is not None:
        overrides.append(f"data.root={root}")
    return compose([*overrides, *extra])


def load_cifar_lt(root: str, device: torch.device) -> SplitData:
    """CIFAR-10-LT rho=100 as the composed config describes it (10 % validation split, data seed 0)."""
    return load_data(compose_config("fp32", root).data, device)


def take(data: SplitData, n_train: int | None = None, n_test: int = 256) -> SplitData:
    """A view of ``data`` with its first ``n_train`` training images (all when None), no validation split and
    ``n_test`` test images: evaluation is not what is timed here, so it is kept small."""
    n_train = data.train_y.numel() if n_train is None else min(n_train, data.train_y.numel())
    return dataclasses.replace(
        data,
        train_x=data.train_x[:n_train],
        train_y=data.train_y[:n_train],
        val_x=data.val_x[:0],
        val_y=data.val_y[:0],
        test_x=data.test_x[:n_test],
        test_y=data.test_y[:n_test],
    )


def fresh_model(cfg, data: SplitData, channels_last: bool, device: torch.device) -> torch.nn.Module:
    """The config's model with seeded weights, on ``device``, optionally in channels_last."""
    torch.manual_seed(int(cfg.seed))
    model = build_model(cfg.model, data.input_shape, data.n_classes).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


# ----------------------------------------------------------------------------------------------------------
# The pipelines. Each trains its own model on a given slice of the training images and returns
# (images, seconds); the epoch is cut into chunks that the pipelines take in turn (see run()).
# ----------------------------------------------------------------------------------------------------------


class FocalbenchPipeline:
    """focalbench's own ``train()`` (one epoch per call) in ``precision``, channels_last."""

    def __init__(self, precision: str, data: SplitData, device: torch.device):
        self.cfg = compose_config(precision)
        self.precision, self.device = precision, device
        self.model = fresh_model(self.cfg, data, True, device)

    def train_on(self, chunk: SplitData) -> tuple[int, float]:
        result = train(self.cfg, chunk, self.model, None, self.device, self.precision, lambda _e: None)
        return result.images_seen, result.train_time_s


class ReferencePipeline:
    """What a user would otherwise write: a torchvision DataLoader with per-sample transforms, NCHW fp32,
    ``F.cross_entropy`` and the config's SGD (see the module docstring)."""

    def __init__(self, data: SplitData, device: torch.device):
        self.cfg = compose_config("fp32")
        self.device = device
        self.model = fresh_model(self.cfg, data, False, device)
        o = self.cfg.optim
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=float(o.lr),
            momentum=float(o.momentum),
            nesterov=bool(o.nesterov) and float(o.momentum) > 0,
            weight_decay=float(o.weight_decay),
        )
        self.generator = torch.Generator().manual_seed(int(self.cfg.seed))

    def loader(self, chunk: SplitData) -> torch.utils.data.DataLoader:
        return make_dataloader(chunk, batch_size=int(self.cfg.batch_size), generator=self.generator)

    def train_on(self, chunk: SplitData) -> tuple[int, float]:
        loader = self.loader(chunk)  # building it (a numpy copy of the chunk) is setup, not timed
        self.model.train()
        images = 0
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss = F.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            images += y.numel()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return images, time.perf_counter() - start


def chunk_of(data: SplitData, index: int, n_chunks: int) -> SplitData:
    """The ``index``-th of ``n_chunks`` contiguous slices of the training images (``take`` otherwise)."""
    n = data.train_y.numel()
    lo, hi = n * index // n_chunks, n * (index + 1) // n_chunks
    part = take(data)
    return dataclasses.replace(part, train_x=data.train_x[lo:hi], train_y=data.train_y[lo:hi])


def interleaved_epoch(pipelines: dict, data: SplitData, n_chunks: int, batch_size: int) -> dict:
    """Warm every pipeline up on a few batches, then train each on one epoch of ``data`` cut into
    ``n_chunks`` slices, taking the slices in turn (pipeline A slice 1, B slice 1, ..., A slice 2, ...), so
    that load from other processes on a shared machine falls on all pipelines alike.

    Returns per pipeline ``{"images", "seconds", "images_per_s"}`` over the whole epoch (warm-up excluded).
    """
    warmup = take(data, WARMUP_STEPS * batch_size, n_test=64)
    for pipeline in pipelines.values():
        pipeline.train_on(warmup)
    rates: dict[str, list[float]] = {name: [] for name in pipelines}
    totals = {name: [0, 0.0] for name in pipelines}
    for index in range(n_chunks):
        chunk = chunk_of(data, index, n_chunks)
        for name, pipeline in pipelines.items():
            images, seconds = pipeline.train_on(chunk)
            totals[name][0] += images
            totals[name][1] += seconds
            rates[name].append(images / seconds)
    return {
        name: {
            "images": images,
            "seconds": seconds,
            "images_per_s": images / seconds,
            "per_slice": rates[name],
        }
        for name, (images, seconds) in totals.items()
    }


# ----------------------------------------------------------------------------------------------------------
# Section 1: throughput
# ----------------------------------------------------------------------------------------------------------


def run(
    quick: bool = False,
    data: SplitData | None = None,
    n_train: int | None = None,
    n_chunks: int | None = None,
) -> dict:
    """Throughput of focalbench (fp32 and bf16, channels_last) against the reference, one epoch each.

    Args:
        quick: time the first 1,024 training images instead of the whole epoch.
        data: the task to train on; None loads CIFAR-10-LT rho=100 (the section is skipped, with the reason,
            when no CIFAR-10 copy is found). Tests pass small random images.
        n_train: training images per timed pass (overrides ``quick``).
        n_chunks: slices the epoch is cut into (default 4, ``quick`` 2); each new slice size costs oneDNN
            kernel builds, which is why tests on tiny inputs pass 1.

    Returns a section result (``bench.common``): one check per precision, ratio = focalbench / reference
    images/s, target >= 3x; ``details`` holds every figure plus ``flops_per_example`` and the config.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    source = "data passed by the caller"
    if data is None:
        root, source = find_cifar_root()
        if root is None:
            return section(SECTION, reason=source)
        data = load_cifar_lt(root, device)
    if n_train is None and quick:
        n_train = 1024
    data = take(data, n_train)
    cfg = compose_config("fp32")
    default_precision = resolve_precision("auto", device)

    pipelines = {"reference": ReferencePipeline(data, device)}
    pipelines.update({p: FocalbenchPipeline(p, data, device) for p in PRECISIONS})
    n_chunks = n_chunks or (2 if quick else 4)
    measured = interleaved_epoch(pipelines, data, n_chunks, int(cfg.batch_size))
    reference, ours = measured["reference"], {p: measured[p] for p in PRECISIONS}
    checks = [
        check(
            f"train images/s, {p} channels_last" + (" (default)" if p == default_precision else ""),
            "DataLoader+transforms, NCHW fp32",
            reference["images_per_s"],
            f"focalbench {p}",
            ours[p]["images_per_s"],
            "img/s",
            f">= {TARGET_SPEEDUP:g}x",
            ours[p]["images_per_s"] >= TARGET_SPEEDUP * reference["images_per_s"],
        )
        for p in PRECISIONS
    ]
    model = fresh_model(cfg, data, False, torch.device("cpu"))
    details = {
        "data": source,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "n_train_images": int(data.train_y.numel()),
        "batch_size": int(cfg.batch_size),
        "model": "cnn",
        "default_precision": default_precision,
        "flops_per_example": flops_per_example(model, data.input_shape),
        "chunks": n_chunks,
        "reference": reference,
        **{f"focalbench_{p}": ours[p] for p in PRECISIONS},
    }
    notes = [
        f"default precision on {device.type}: {default_precision} (precision=auto); "
        "both focalbench figures use channels_last, the reference NCHW fp32"
    ]
    for p in PRECISIONS:
        slices = [a / b for a, b in zip(ours[p]["per_slice"], reference["per_slice"], strict=True)]
        notes.append(f"{p} / reference per slice of the epoch: " + ", ".join(f"{r:.2f}x" for r in slices))
    return section(SECTION, checks, details, notes)


# ----------------------------------------------------------------------------------------------------------
# Section 2: MFU
# ----------------------------------------------------------------------------------------------------------


def _dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" else torch.float32


MATMUL_PROBE = 256  # the product timed first, to size the peak's product
MATMUL_BUDGET_S = 1.0  # the longest one product of the peak may take


def matmul_peak(precision: str, size: int, repeats: int, device: torch.device) -> float:
    """FLOP/s of an n x n x n matrix product in ``precision`` (2 n^3 FLOPs), under the training loop's own
    autocast (:func:`autocast_context`), so that it times the kernels training runs. n is ``size``, or less
    where one product would take over ``MATMUL_BUDGET_S`` (:func:`matmul_size`): bf16 without native bf16 runs
    PyTorch's fallback at 0.3 to 1 GFLOP/s, where a 2048^3 product takes a minute. The smaller product's
    rate stands in for the larger one's; the peak is the faster of this and the convolution's, which is two
    orders of magnitude faster there, so the MFU does not move."""

    def rate(n: int, times: int) -> float:
        a = torch.randn(n, n, device=device, dtype=_dtype(precision))
        b = torch.randn(n, n, device=device, dtype=_dtype(precision))

        def product() -> None:
            with autocast_context(device, precision):
                torch.mm(a, b)

        return 2 * n**3 / median_time(product, times)

    probe = rate(MATMUL_PROBE, 1)
    return rate(matmul_size(probe, size, MATMUL_BUDGET_S), repeats)


def matmul_size(probe_flops: float, size: int, budget_s: float) -> int:
    """The largest of ``size``, ``size / 2``, ... (at least ``MATMUL_PROBE``) whose product, at the probe's
    FLOP/s, takes at most ``budget_s``."""
    n = size
    while n > MATMUL_PROBE and 2 * n**3 / probe_flops > budget_s:
        n //= 2
    return max(n, MATMUL_PROBE)


def conv_peak(precision: str, batch: int, channels: int, repeats: int, device: torch.device) -> float:
    """FLOP/s of a 3x3 convolution, ``channels`` in and out on 32x32 images, channels_last, forward, under the
    training loop's own autocast. That matters for bf16 on a CPU without native bf16: training's convolutions
    run there as fp32 products rounded to bf16 (``focalbench.training.bf16_conv``), and a bare bf16 conv2d
    would time PyTorch's 10x slower fallback instead, a "peak" below what training achieves."""
    x = torch.randn(batch, channels, 32, 32, device=device, dtype=_dtype(precision))
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, device=device, dtype=_dtype(precision))
    w = w.contiguous(memory_format=torch.channels_last)

    def convolution() -> None:
        with autocast_context(device, precision):
            F.conv2d(x, w, padding=1)

    with torch.no_grad():
        seconds = median_time(convolution, repeats)
    return 2 * batch * channels * 32 * 32 * channels * 9 / seconds


def profile_steps(cfg, data: SplitData, precision: str, device: torch.device, steps: int) -> tuple[str, dict]:
    """``torch.profiler`` table (top 15 ops by self CPU time) of ``steps`` training steps of ``train()``;
    and the share of self CPU time spent in convolution and matmul kernels."""
    from torch.profiler import ProfilerActivity, profile

    subset = take(data, steps * int(cfg.batch_size), n_test=64)
    model = fresh_model(cfg, data, True, device)
    train(cfg, subset, model, None, device, precision, lambda _e: None)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(cfg, subset, model, None, device, precision, lambda _e: None)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    heavy = ("conv", "mkldnn", "addmm", "aten::mm", "bmm", "matmul", "linear")
    dense = sum(e.self_cpu_time_total for e in events if any(k in e.key for k in heavy))
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:5]
    share = {
        "conv_matmul_share_of_self_cpu": dense / total if total else math.nan,
        "top_ops": [{"op": e.key, "share": e.self_cpu_time_total / total} for e in top],
    }
    return events.table(sort_by="self_cpu_time_total", row_limit=15), share


def run_mfu(throughput: dict, quick: bool = False, data: SplitData | None = None) -> dict:
    """MFU of the throughput section's figures against peaks measured now (see the module docstring).

    Args:
        throughput: the result of :func:`run` (skipped in turn when it was skipped).
        quick: smaller peak problems and fewer repeats.
        data: the task for the profiler run; None loads CIFAR-10-LT again.

    Returns a section result: one check per precision, ratio = achieved / peak FLOP/s, target >= 0.40.
    """
    if throughput["status"] != "ok":
        return section(MFU_SECTION, reason=f"needs the training throughput ({throughput['reason']})")
    device = torch.device(throughput["details"]["device"])
    size, batch, channels, repeats = (1024, 16, 64, 3) if quick else (2048, 64, 128, 5)
    flops = throughput["details"]["flops_per_example"]
    checks, details, notes, profiles = [], {"train_flops_per_example": 3 * flops}, [], []
    if data is None:
        root, _ = find_cifar_root()
        data = load_cifar_lt(root, device)
    for p in PRECISIONS:
        peaks = {
            "matmul": matmul_peak(p, size, repeats, device),
            "conv3x3": conv_peak(p, batch, channels, repeats, device),
        }
        peak_kind = max(peaks, key=peaks.get)
        achieved = 3 * flops * throughput["details"][f"focalbench_{p}"]["images_per_s"]
        mfu = achieved / peaks[peak_kind]
        if mfu > 1:  # a peak below the achieved rate is no peak: the check fails rather than claim a target
            notes.append(
                f"{p}: achieved {achieved:.3g} FLOP/s is above the measured peak {peaks[peak_kind]:.3g}: the "
                "peak problem did not time the kernels training runs, so this MFU is not a figure"
            )
        checks.append(
            check(
                f"MFU {p} channels_last",
                f"peak ({peak_kind}) FLOP/s",
                peaks[peak_kind],
                "achieved train FLOP/s",
                achieved,
                "FLOP/s",
                f">= {TARGET_MFU:.0%} of peak",
                TARGET_MFU <= mfu <= 1,
            )
        )
        cfg = compose_config(p)
        table, share = profile_steps(cfg, data, p, device, steps=3 if quick else 6)
        details[p] = {
            "peaks": peaks,
            "achieved": achieved,
            "mfu_of_peak": mfu,
            "mfu_of_matmul": achieved / peaks["matmul"],
            "profile": share,
        }
        profiles.append(f"## focalbench train() step, {p} channels_last, top ops by self CPU time\n\n{table}")
        if mfu < TARGET_MFU:
            top = ", ".join(f"{t['op']} {t['share']:.0%}" for t in share["top_ops"])
            notes.append(
                f"{p}: MFU {mfu:.1%} of the {peak_kind} peak, {TARGET_MFU / mfu:.1f}x short of {TARGET_MFU:.0%} "
                f"({achieved / peaks['matmul']:.1%} of the matmul peak); conv/matmul kernels take "
                f"{share['conv_matmul_share_of_self_cpu']:.0%} of the step's self CPU time, the rest is "
                f"memory-bound ops (top: {top}); the cnn's layers are small (3-128 channels, batch 256), so "
                "even its convolutions run far below the large-conv peak"
            )
    profile_path = RESULTS_DIR / "bench_profile.txt"
    write_atomic(profile_path, "\n\n".join(profiles) + "\n")
    details["profile_file"] = str(profile_path)
    return section(MFU_SECTION, checks, details, notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time 1,024 images instead of an epoch")
    args = parser.parse_args()
    from bench.common import print_sections

    throughput = run(quick=args.quick)
    print_sections([throughput, run_mfu(throughput, quick=args.quick)])


if __name__ == "__main__":
    main()
