r"""Cost of ``focal_loss`` against ``F.cross_entropy``: forward + backward time and memory held for backward.

Inputs: float32 logits [N=8192, C=100] (standard normal x 3, ``requires_grad``) and uniform random targets.
One call = loss (reduction "mean", alpha None) + ``backward()``. Time: the median of repeated calls after
a warm-up, on one thread, the candidates called in turn (interleaved), so that load from other processes
hits them alike. Memory: the bytes of the distinct tensor storages autograd saves for backward, counted with
``torch.autograd.graph.saved_tensors_hooks`` (deterministic on CPU and GPU; forward temporaries that are freed
before backward are not counted). Targets per gamma in {0, 0.5, 2}: time <= 2x and memory <= 2x of CE.

The section also times ``_check_logits_target`` alone (the target range check, read back on the CPU and
asserted on the device on a GPU), and checks that value and gradient stay finite at extreme margins.
``focal_loss`` computes gamma > 0 with one autograd Function and a closed-form gradient
(``focalbench.losses._FocalTerm``), which saves only the softmax probabilities, as CE saves its
log-probabilities.

Run alone: ``python bench/bench_loss.py [--quick]``.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a script: make `bench` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import check, interleaved_times, section, section_script, torch_threads
from focalbench.losses import focal_loss
from focalbench.losses._checks import _check_logits_target

SECTION = "loss cost"
GAMMAS = (0.0, 0.5, 2.0)
TARGET_TIME = 2.0
TARGET_MEMORY = 2.0


def saved_bytes(loss_fn, logits: torch.Tensor, target: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves for the backward of ``loss_fn(logits, target)``."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_fn(logits, target)
    loss.backward()
    logits.grad = None
    return sum(storages.values())


def train_step(loss_fn, logits: torch.Tensor, target: torch.Tensor):
    """A zero-argument callable doing one forward + backward of ``loss_fn`` (and clearing the gradient)."""

    def step() -> None:
        loss_fn(logits, target).backward()
        logits.grad = None

    return step


def make_inputs(n: int, c: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(n, c, generator=generator)).to(device).requires_grad_(True)
    target = torch.randint(0, c, (n,), generator=generator).to(device)
    return logits, target


def finite_at_extremes(loss_fn, c: int, device: torch.device) -> bool:
    """True if value and gradient are finite where p_t -> 1 (margin 100) and p_t -> 0 (margin -100)."""
    logits = torch.zeros(2, c, device=device)
    logits[0, 0], logits[1, 0] = 100.0, -100.0
    logits.requires_grad_(True)
    loss = loss_fn(logits, torch.zeros(2, dtype=torch.long, device=device))
    loss.backward()
    return bool(torch.isfinite(loss).item() and torch.isfinite(logits.grad).all().item())


def run(quick: bool = False, n: int = 8192, c: int = 100) -> dict:
    """Time and memory of focal_loss (gamma in GAMMAS) against F.cross_entropy on [n, c] logits.

    Returns a section result: per gamma a time check and a memory check (ratio = focal / CE); ``details``
    holds the CE figures, the range-check cost, and per gamma the ratios and finiteness at extreme margins.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    repeats = 5 if quick else 30
    logits, target = make_inputs(n, c, device)
    losses = {"ce": lambda z, y: F.cross_entropy(z, y)}
    for gamma in GAMMAS:
        losses[f"focal {gamma:g}"] = lambda z, y, g=gamma: focal_loss(z, y, gamma=g)
    steps = {name: train_step(fn, logits, target) for name, fn in losses.items()}
    steps["range check"] = lambda: _check_logits_target(logits, target, -100)
    # One thread: on a shared 2-core machine, a 2-thread kernel waits for its slower thread whenever another
    # process holds a core, which inflated millisecond ops ~10x in trials; one thread is steady.
    with torch_threads(1):
        times = interleaved_times(steps, repeats, warmup=2)
    seconds = {name: statistics.median(values) for name, values in times.items()}
    saved = {name: saved_bytes(fn, logits, target) for name, fn in losses.items()}
    ce_time, ce_bytes, check_time = seconds["ce"], saved["ce"], seconds["range check"]
    checks, per_gamma, notes = [], {}, []
    for gamma in GAMMAS:
        focal = losses[f"focal {gamma:g}"]
        f_time, f_bytes = seconds[f"focal {gamma:g}"], saved[f"focal {gamma:g}"]
        checks.append(
            check(f"fwd+bwd time, gamma={gamma:g}", "F.cross_entropy", ce_time * 1e3, "focal_loss",
                  f_time * 1e3, "ms", f"<= {TARGET_TIME:g}x", f_time <= TARGET_TIME * ce_time)
        )  # fmt: skip
        checks.append(
            check(f"saved-for-backward memory, gamma={gamma:g}", "F.cross_entropy", ce_bytes / 2**20,
                  "focal_loss", f_bytes / 2**20, "MiB", f"<= {TARGET_MEMORY:g}x", f_bytes <= TARGET_MEMORY * ce_bytes)
        )  # fmt: skip
        per_gamma[f"{gamma:g}"] = {
            "focal_ms": f_time * 1e3,
            "focal_saved_mib": f_bytes / 2**20,
            "time_ratio_vs_ce": f_time / ce_time,
            "memory_ratio_vs_ce": f_bytes / ce_bytes,
            "finite_at_extremes": finite_at_extremes(focal, c, device),
        }
        if f_time > TARGET_TIME * ce_time or f_bytes > TARGET_MEMORY * ce_bytes:
            notes.append(
                f"gamma={gamma:g}: focal_loss {f_time / ce_time:.1f}x CE time, {f_bytes / ce_bytes:.1f}x memory"
            )
    notes.append(
        f"memory = bytes of distinct storages saved for backward (torch.autograd.graph.saved_tensors_hooks); "
        f"the target range check (_check_logits_target) costs {check_time * 1e3:.3f} ms per call "
        f"({check_time / ce_time:.0%} of a CE step) on {device.type}"
    )
    details = {
        "n": n,
        "c": c,
        "device": str(device),
        "repeats": repeats,
        "threads": 1,
        "ce_ms": ce_time * 1e3,
        "ce_saved_mib": ce_bytes / 2**20,
        "range_check_ms": check_time * 1e3,
        "per_gamma": per_gamma,
    }
    return section(SECTION, checks, details, notes)


def main() -> None:
    section_script(__doc__, run, "fewer repeats")


if __name__ == "__main__":
    main()
