"""Fused groups: the training time of K runs trained as one fused model against the same K runs one by one.

Everything runs in this process, side by side, on the same data:

- ``mlp`` (the synthetic default, the sweep ``gamma=0,1,2,5 seed=0,1,2``): 12 members. Candidate: the fused
  group's training time (``training.fused.train_group``); baseline: the sum of the 12 unfused runs' training
  time (``training.loop.train``), both the loops' own ``train_time_s`` (the epochs, without evaluation).
  Rounds alternate group and runs so that load from other processes falls on both; the figure is the median
  ratio, the range goes to the notes. Target: >= 6x.
- ``cnn`` and ``resnet32`` on CIFAR-10-LT (rho = 100): 8 members (gamma 0,1,2,5 x seed 0,1), a few steps
  (the training split cut to ``steps x batch`` images, so one epoch is those steps; evaluation on 256 test
  images), fused against unfused. Reported, no target: where fusion is slower there, the sweep does not fuse
  that model by default on that device (``focalbench.sweeps.fuse.CPU_FUSED_MODELS``).

On CUDA (``bench/gpu.sh``) the same function measures a group of 12 ``resnet32`` members, batch 128, bf16,
channels_last, in images/s over all members (:func:`image_group`).

Run alone: ``python bench/bench_fused.py [--quick] [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_train import take  # the same small view of the data as the training benchmark
from bench.common import check, find_cifar_root, print_sections, section
from focalbench.config import compose
from focalbench.data import SplitData, load_data
from focalbench.training import runner
from focalbench.training.fused import train_group
from focalbench.training.loop import train

SECTION = "fused groups"
TARGET_MLP = 6.0
MLP_GRID = [(g, s) for s in (0, 1, 2) for g in (0, 1, 2, 5)]
IMAGE_GRID = [(g, s) for s in (0, 1) for g in (0, 1, 2, 5)]


def _setups(cfgs, data, device, precision):
    out = []
    for cfg in cfgs:
        runner.seed_everything(int(cfg.seed))
        out.append(runner.prepare_run(cfg, "bench", data, device, precision))
    return out


def time_group_and_runs(cfgs, data, device, precision: str) -> tuple[float, float, list[float]]:
    """(fused group's train_time_s, sum of the unfused runs' train_time_s, each run's)."""
    setups = _setups(cfgs, data, device, precision)
    _, group_time = train_group(
        cfgs, data, [s.model for s in setups], [s.alpha for s in setups], device, precision, lambda _e: None
    )
    alone = []
    for cfg in cfgs:
        (s,) = _setups([cfg], data, device, precision)
        alone.append(train(cfg, data, s.model, s.alpha, device, precision, lambda _e: None).train_time_s)
    return group_time, sum(alone), alone


def mlp_group(rounds: int, extra: tuple[str, ...] = ()) -> dict:
    """The default sweep's 12 runs (synthetic task, mlp), fused against one by one; ``rounds`` rounds."""
    cfgs = [compose([f"gamma={g}", f"seed={s}", "device=cpu", *extra]) for g, s in MLP_GRID]
    runner.set_threads(int(cfgs[0].threads), 1, vector_data=True)
    device = torch.device("cpu")
    data = load_data(cfgs[0].data, device)
    time_group_and_runs(cfgs[:2], data, device, "fp32")  # warm-up: first-use costs of both paths
    rows = []
    for _ in range(rounds):
        group, runs, _alone = time_group_and_runs(cfgs, data, device, "fp32")
        rows.append({"fused_s": group, "unfused_s": runs, "ratio": runs / group})
    return {
        "members": len(cfgs),
        "epochs": int(cfgs[0].epochs),
        "threads": torch.get_num_threads(),
        "rounds": rows,
    }


def image_group(
    model: str,
    data: SplitData,
    device: torch.device,
    members: int = 8,
    steps: int = 3,
    batch_size: int = 256,
    precision: str = "fp32",
    channels_last: bool = True,
    unfused_runs: int | None = None,
) -> dict:
    """``members`` runs of ``model`` (gamma x seed) for ``steps`` steps each, fused and one by one; images/s
    over all members. ``unfused_runs`` times only that many of the runs alone (each is the same work) and
    scales: on a GPU one run alone is the baseline the issue asks for."""
    grid = [(g, s) for s in range(members) for g in (0, 1, 2, 5)][:members]
    cfgs = [
        compose([
            "data=cifar10_lt", f"model={model}", f"gamma={g}", f"seed={s}", "epochs=1", f"batch_size={batch_size}",
            f"precision={precision}", f"channels_last={str(channels_last).lower()}", f"device={device.type}",
            "eval.batch_size=256",
        ])
        for g, s in grid
    ]  # fmt: skip
    small = take(data, steps * batch_size)
    warm = take(data, batch_size)
    # warm-up: oneDNN / cuDNN pick their kernels on first use, for both shapes
    time_group_and_runs(cfgs[:2], warm, device, precision)
    setups = _setups(cfgs, small, device, precision)
    _sync(device)
    _, group_time = train_group(
        cfgs, small, [s.model for s in setups], [s.alpha for s in setups], device, precision, lambda _e: None
    )
    n_alone = len(cfgs) if unfused_runs is None else unfused_runs
    alone = []
    for cfg in cfgs[:n_alone]:
        (s,) = _setups([cfg], small, device, precision)
        alone.append(train(cfg, small, s.model, s.alpha, device, precision, lambda _e: None).train_time_s)
    images = steps * batch_size
    alone_per_run = statistics.mean(alone)
    return {
        "model": model,
        "members": len(cfgs),
        "steps": steps,
        "batch_size": batch_size,
        "precision": precision,
        "channels_last": channels_last,
        "device": str(device),
        "fused_s": group_time,
        "unfused_s_per_run": alone_per_run,
        "unfused_runs_timed": n_alone,
        "fused_images_per_s": images * len(cfgs) / group_time,
        "unfused_images_per_s": images / alone_per_run,
        "speedup": alone_per_run * len(cfgs) / group_time,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(
    quick: bool = False,
    cifar: SplitData | None = None,
    device: str = "cpu",
    mlp_extra: tuple[str, ...] | None = None,
    image_steps: int | None = None,
    image_batch: int | None = None,
) -> dict:
    """The section: the mlp check (target >= 6x) and, with CIFAR-10, cnn and resnet32 (information).
    ``mlp_extra`` (overrides of the mlp runs), ``image_steps`` and ``image_batch`` shrink it for tests."""
    dev = torch.device(device)
    rounds = 2 if quick else 3
    mlp = mlp_group(rounds, mlp_extra if mlp_extra is not None else (("epochs=10",) if quick else ()))
    ratios = [r["ratio"] for r in mlp["rounds"]]
    median = statistics.median(ratios)
    fused_s = statistics.median(r["fused_s"] for r in mlp["rounds"])
    unfused_s = statistics.median(r["unfused_s"] for r in mlp["rounds"])
    checks = [
        check(
            f"training time, {mlp['members']} mlp runs (synthetic, {mlp['epochs']} epochs)",
            "the runs one by one (sum of train_time_s)",
            unfused_s,
            "one fused group",
            fused_s,
            "s",
            f">= {TARGET_MLP:g}x faster",
            median >= TARGET_MLP,
            ratio=median,
        )
    ]
    notes = [
        f"mlp x{mlp['members']}: fused {median:.2f}x faster (range {min(ratios):.2f}-{max(ratios):.2f}x over "
        f"{len(ratios)} rounds, {mlp['threads']} thread)"
    ]
    details = {"mlp": mlp}
    if cifar is None:
        root, why = find_cifar_root()
        cifar = (
            None if root is None else load_data(compose(["data=cifar10_lt", f"data.root={root}"]).data, dev)
        )
        if cifar is None:
            notes.append(f"cnn and resnet32 skipped: {why}")
    elif cifar.device != dev:
        cifar = dataclasses.replace(cifar, **{k: getattr(cifar, k).to(dev) for k in
                                              ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")})  # fmt: skip
    if cifar is not None:
        for model in ("cnn", "resnet32"):
            steps = image_steps if image_steps is not None else (2 if quick else 3)
            batch = image_batch if image_batch is not None else (64 if quick else 256)
            result = image_group(model, cifar, dev, members=8, steps=steps, batch_size=batch)
            details[model] = result
            checks.append(
                check(
                    f"training images/s, 8 {model} runs (CIFAR-10-LT, {result['steps']} steps of "
                    f"{result['batch_size']}, {device})",
                    "the runs one by one",
                    result["unfused_images_per_s"],
                    "one fused group",
                    result["fused_images_per_s"],
                    "img/s",
                    "info",
                    None,
                )
            )
            verdict = "faster" if result["speedup"] >= 1 else "slower: not fused by default on this device"
            notes.append(f"{model} x8 on {device}: fused {result['speedup']:.2f}x ({verdict})")
    return section(SECTION, checks, details, notes)


def random_cifar(n: int, device: torch.device) -> SplitData:
    """CIFAR-shaped random images (10 classes, uint8), for a throughput figure when no CIFAR-10 copy is at
    hand: the time of a step does not depend on the pixel values."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 10
    return SplitData(
        name="cifar10_lt", kind="image", n_classes=10, class_names=[str(c) for c in range(10)],
        train_x=x.to(device), train_y=y.to(device), val_x=x[:0].to(device), val_y=y[:0].to(device),
        test_x=x[:256].to(device), test_y=y[:256].to(device), train_counts=[n // 10] * 10,
        longtail_counts=[n // 10] * 10, mean=torch.full((1, 3, 1, 1), 0.5, device=device),
        std=torch.full((1, 3, 1, 1), 0.25, device=device), augment=True, info={"random": True},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and epochs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--group", metavar="MODEL", help="only one image group of MODEL (cnn, resnet32)")
    parser.add_argument("--members", type=int, default=12)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--json", type=Path, help="write the --group result here")
    args = parser.parse_args()
    if not args.group:
        print_sections([run(quick=args.quick, device=args.device)])
        return
    import json

    device = torch.device(args.device)
    root, why = find_cifar_root()
    if root is not None:
        data = load_data(compose(["data=cifar10_lt", f"data.root={root}"]).data, device)
    else:
        print(f"no CIFAR-10 ({why}): random CIFAR-shaped images", file=sys.stderr)
        data = random_cifar(max(args.steps, 2) * args.batch, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    result = image_group(
        args.group, data, device, members=args.members, steps=args.steps, batch_size=args.batch,
        precision=args.precision, channels_last=True, unfused_runs=1,
    )  # fmt: skip
    result["data"] = "CIFAR-10-LT" if root is not None else "random CIFAR-shaped images"
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
