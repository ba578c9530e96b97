"""CPU defaults: bf16 against fp32 accuracy and speed, and what ``compile=true`` (torch.compile) buys.

Not part of ``run_all`` (it trains for several minutes). Writes ``results/bench_precision.md`` and
``results/bench_precision.json``.

1. Precision: ``focalbench run experiment=cifar_cpu loss=ce`` (cnn, CIFAR-10-LT rho=100, 4 epochs, batch 256)
   for ``precision=fp32`` and ``precision=bf16`` (autocast; channels_last both), seeds 0 and 1, through the
   real runner (:func:`focalbench.training.runner.execute_run`) into a temporary results folder. The runs
   alternate fp32/bf16 so that load from other processes falls on both alike. Reported per run: final test
   top-1 and balanced accuracy (percent), ECE (percent) and training images/s; per precision the mean, and the
   seed spread (|seed 0 - seed 1|) as the noise yardstick: bf16 is "within seed noise" when its mean differs
   from fp32's by no more than the larger of the two precisions' seed spreads.
2. Compile (fp32, the CPU default): the training step of ``focalbench.training.loop`` (autocast, loss in
   float32, SGD) on one fixed batch of 256, eager against ``torch.compile(model)``: the first compiled step
   (compile time included), the steady-state step time of each (median of 10 after warm-up), and the net
   gain of compiling for a run of ``cifar_cpu`` length (4 epochs x 44 steps): eager steps x t_eager against
   compile time + steps x t_compiled. The run's evaluation (a model in eval mode) and its last partial batch
   recompile again in a real run, so this is an upper bound on the gain.

Usage: ``python bench/bench_precision.py [--quick]`` (``--quick``: 1 epoch, 1 seed, 3 steady-state steps).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.common import RESULTS_DIR, find_cifar_root, markdown_table, write_atomic
from focalbench.config import compose
from focalbench.data import iter_train_batches, load_data
from focalbench.models import build_model
from focalbench.training.loop import autocast_context, make_criterion
from focalbench.training.runner import execute_run

PRECISIONS = ("fp32", "bf16")


def precision_runs(root: str, seeds: tuple[int, ...], epochs: int, results_dir: str) -> list[dict]:
    """One ``cifar_cpu`` CE run per (seed, precision), alternating precisions; their key metrics."""
    rows = []
    for seed in seeds:
        for precision in PRECISIONS:
            cfg = compose(
                [
                    "experiment=cifar_cpu",
                    "loss=ce",
                    f"epochs={epochs}",
                    f"seed={seed}",
                    f"precision={precision}",
                    f"data.root={root}",
                    f"results_dir={results_dir}",
                ]
            )
            outcome = execute_run(cfg, quiet=True, force=True)
            if outcome.status != "ok":
                raise RuntimeError(
                    f"run {precision} seed {seed} ended with {outcome.status}: {outcome.error}"
                )
            m = outcome.metrics
            rows.append(
                {
                    "precision": precision,
                    "seed": seed,
                    "test_accuracy": m["test"]["accuracy"],
                    "test_balanced_accuracy": m["test"]["balanced_accuracy"],
                    "test_ece": m["test"]["ece"],
                    "train_images_per_s": m["timing"]["images_per_s"],
                    "wall_time_s": m["timing"]["wall_time_s"],
                }
            )
    return rows


def summarise_precision(rows: list[dict]) -> dict:
    """Per precision: mean of each metric and the seed spread (max - min) of balanced accuracy."""
    summary = {}
    for p in PRECISIONS:
        mine = [r for r in rows if r["precision"] == p]
        summary[p] = {
            key: statistics.mean(r[key] for r in mine)
            for key in ("test_accuracy", "test_balanced_accuracy", "test_ece", "train_images_per_s")
        }
        bal = [r["test_balanced_accuracy"] for r in mine]
        summary[p]["seed_spread_balanced_accuracy"] = max(bal) - min(bal)
    diff = summary["bf16"]["test_balanced_accuracy"] - summary["fp32"]["test_balanced_accuracy"]
    noise = max(summary[p]["seed_spread_balanced_accuracy"] for p in PRECISIONS)
    summary["bf16_minus_fp32_balanced_accuracy"] = diff
    summary["within_seed_noise"] = abs(diff) <= noise if len(rows) > 2 else None
    summary["bf16_speedup"] = summary["bf16"]["train_images_per_s"] / summary["fp32"]["train_images_per_s"]
    return summary


def compile_gain(root: str, steady_steps: int, run_steps: int) -> dict:
    """Eager against ``torch.compile`` for the fp32 training step (see the module docstring)."""
    cfg = compose(["experiment=cifar_cpu", "loss=ce", "precision=fp32", f"data.root={root}"])
    device = torch.device("cpu")
    data = load_data(cfg.data, device)
    x, y = next(iter_train_batches(data, int(cfg.batch_size), torch.Generator().manual_seed(0)))
    x = x.contiguous(memory_format=torch.channels_last)
    criterion = make_criterion(cfg, data.train_counts, device)

    def make_step(model):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

        def step() -> None:
            with autocast_context(device, "fp32"):
                logits = model(x)
            loss = criterion(logits, y, None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def fresh():
        torch.manual_seed(0)
        return build_model(cfg.model, data.input_shape, data.n_classes).to(memory_format=torch.channels_last)

    eager = make_step(fresh())
    compiled = make_step(torch.compile(fresh()))
    first_eager = timed(eager)
    first_compiled = timed(compiled)
    for _ in range(2):  # settle both (the compiled step may recompile once on its second call)
        eager()
        compiled()
    eager_times, compiled_times = [], []
    for _ in range(steady_steps):  # interleaved, so load from other processes falls on both alike
        eager_times.append(timed(eager))
        compiled_times.append(timed(compiled))
    t_eager, t_compiled = statistics.median(eager_times), statistics.median(compiled_times)
    compile_time = first_compiled - t_compiled
    eager_run = run_steps * t_eager
    compiled_run = compile_time + run_steps * t_compiled
    breakeven = compile_time / (t_eager - t_compiled) if t_eager > t_compiled else math.inf
    return {
        "batch_size": int(cfg.batch_size),
        "first_step_eager_s": first_eager,
        "first_step_compiled_s": first_compiled,
        "compile_time_s": compile_time,
        "steady_step_eager_s": t_eager,
        "steady_step_compiled_s": t_compiled,
        "steady_speedup": t_eager / t_compiled,
        "run_steps": run_steps,
        "run_eager_s": eager_run,
        "run_compiled_s": compiled_run,
        "net_gain_s": eager_run - compiled_run,
        "breakeven_steps": breakeven,
    }


def report(rows: list[dict], summary: dict, comp: dict, epochs: int) -> str:
    """results/bench_precision.md."""
    run_table = markdown_table(
        ["precision", "seed", "test top-1 %", "test balanced acc %", "test ECE %", "train img/s"],
        [
            [r["precision"], r["seed"], f"{r['test_accuracy']:.2f}", f"{r['test_balanced_accuracy']:.2f}",
             f"{r['test_ece']:.2f}", f"{r['train_images_per_s']:,.0f}"]
            for r in rows
        ],
    )  # fmt: skip
    mean_table = markdown_table(
        ["precision", "mean top-1 %", "mean balanced acc %", "seed spread (bal. acc)", "mean ECE %", "img/s"],
        [
            [p, f"{summary[p]['test_accuracy']:.2f}", f"{summary[p]['test_balanced_accuracy']:.2f}",
             f"{summary[p]['seed_spread_balanced_accuracy']:.2f}", f"{summary[p]['test_ece']:.2f}",
             f"{summary[p]['train_images_per_s']:,.0f}"]
            for p in PRECISIONS
        ],
    )  # fmt: skip
    verdict = {True: "yes", False: "no", None: "n/a (one seed)"}[summary["within_seed_noise"]]
    return "\n".join(
        [
            "# CPU defaults: precision and torch.compile",
            "",
            f"Generated by `python bench/bench_precision.py` on {time.strftime('%Y-%m-%d %H:%M')} "
            f"(torch {torch.__version__}, {torch.get_num_threads()} threads). `experiment=cifar_cpu loss=ce` "
            f"(cnn, CIFAR-10-LT rho=100, {epochs} epochs, batch 256), channels_last, final-epoch metrics on "
            "the balanced test set.",
            "",
            "## bf16 against fp32",
            "",
            run_table,
            "",
            mean_table,
            "",
            f"- bf16 - fp32 mean balanced accuracy: {summary['bf16_minus_fp32_balanced_accuracy']:+.2f} points; "
            f"within seed noise: {verdict}.",
            f"- bf16 training throughput: {summary['bf16_speedup']:.2f}x fp32.",
            "",
            "## torch.compile (fp32, training step on one batch of 256)",
            "",
            markdown_table(
                ["figure", "eager", "compiled"],
                [
                    [
                        "first step (s)",
                        f"{comp['first_step_eager_s']:.2f}",
                        f"{comp['first_step_compiled_s']:.2f}",
                    ],
                    [
                        "steady-state step (s)",
                        f"{comp['steady_step_eager_s']:.3f}",
                        f"{comp['steady_step_compiled_s']:.3f}",
                    ],
                    [
                        f"a {comp['run_steps']}-step run (s)",
                        f"{comp['run_eager_s']:.1f}",
                        f"{comp['run_compiled_s']:.1f}",
                    ],
                ],
            ),  # fmt: skip
            "",
            f"- compile time {comp['compile_time_s']:.1f} s; steady-state speed-up {comp['steady_speedup']:.2f}x; "
            f"net gain over a {comp['run_steps']}-step run {comp['net_gain_s']:+.1f} s; break-even after "
            f"{comp['breakeven_steps']:.0f} steps (an upper bound on the gain: evaluation and the last partial "
            "batch recompile in a real run).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 seed, 3 steady-state steps")
    args = parser.parse_args()
    root, reason = find_cifar_root()
    if root is None:
        sys.exit(f"bench_precision: {reason}")
    epochs, seeds, steady = (1, (0,), 3) if args.quick else (4, (0, 1), 10)
    with tempfile.TemporaryDirectory(prefix="focalbench-bench-precision-") as tmp:
        rows = precision_runs(root, seeds, epochs, tmp)
    summary = summarise_precision(rows)
    comp = compile_gain(root, steady, run_steps=4 * 44)
    text = report(rows, summary, comp, epochs)
    write_atomic(RESULTS_DIR / "bench_precision.md", text)
    write_atomic(
        RESULTS_DIR / "bench_precision.json",
        json.dumps({"runs": rows, "summary": summary, "compile": comp}, indent=2) + "\n",
    )
    print(text)


if __name__ == "__main__":
    main()
