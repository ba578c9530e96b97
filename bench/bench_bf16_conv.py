"""bf16 convolutions computed as fp32 products rounded to bf16, against PyTorch's own bf16 kernel and fp32.

Not part of ``run_all``: it matters on a CPU without native bf16, where PyTorch's bf16 convolution falls back
to ``aten::_slow_conv2d_*`` and ``focalbench.training.bf16_conv`` replaces it. One training step of the
``cifar10_lt_cpu`` recipe's ``cnn`` (widths 32/96/192, stem 32; a batch of 128 random 32x32 images,
channels_last, CE, SGD with momentum, one thread) in three ways, interleaved so that load from other processes
falls on all alike:

- fp32 (the baseline);
- bf16 autocast with PyTorch's kernels (oneDNN with native bf16, the slow fallback without);
- bf16 autocast with ``RoundedBf16Convolutions`` (what ``precision=bf16`` runs on a CPU without native bf16).

Reported: the median step time of each and the ratios; and, for one 3x3 convolution (128 images, 96 -> 96
channels, 16x16), the share of output and gradient entries equal to the exactly computed (fp64), then
rounded, bf16 value for each bf16 way.

Usage: ``python bench/bench_bf16_conv.py [--quick]`` (``--quick``: 2 timed steps each).
"""

from __future__ import annotations

import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

from bench.common import check, section, section_script, torch_threads
from focalbench.hardware import cpu_has_native_bf16, cpu_model
from focalbench.models.cnn import FastCNN
from focalbench.training.bf16_conv import RoundedBf16Convolutions

SECTION = "bf16 convolutions"
BF16 = torch.bfloat16
WAYS = ("fp32", "bf16, PyTorch's kernels", "bf16, rounded fp32 products")


@contextmanager
def _context(way: str):
    """The precision context of ``way`` around a forward pass."""
    if way == "fp32":
        yield
        return
    with torch.autocast("cpu", dtype=BF16), RoundedBf16Convolutions() if way == WAYS[2] else nullcontext():
        yield


def _step_function(way: str):
    """A training step of a fresh model in ``way`` (each way its own model, so no way trains another's)."""
    torch.manual_seed(0)
    model = FastCNN(10, (32, 96, 192), 32).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(128, 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,), generator=g)

    def step():
        with _context(way):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _agreement() -> dict:
    """Share of entries equal to the exact (fp64 products of the bf16 operands) result rounded to bf16."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(128, 96, 16, 16, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(96, 96, 3, 3, generator=g)
    grad_y = torch.randn(128, 96, 16, 16, generator=g).to(BF16)
    x64, w64 = x.to(BF16).double(), w.to(BF16).double()
    exact_y = F.conv2d(x64, w64, padding=1)
    exact_gx, exact_gw, _ = torch.ops.aten.convolution_backward(
        grad_y.double(), x64, w64, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, False]
    )
    shares = {}
    for way in WAYS[1:]:
        xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
        with _context(way):
            out = F.conv2d(xi, wi, padding=1)
        out.backward(grad_y)
        pairs = {
            "output": (out, exact_y),
            "input gradient": (xi.grad, exact_gx),
            "weight gradient": (wi.grad, exact_gw),
        }
        shares[way] = {
            name: float((got.float() == exact.to(BF16).float()).float().mean())
            for name, (got, exact) in pairs.items()
        }
    return shares


def run(quick: bool = False) -> dict:
    repeats = 2 if quick else 5
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    with torch_threads(1):
        steps = {way: _step_function(way) for way in WAYS}
        for step in steps.values():  # warm-up
            step()
        for _ in range(repeats):
            for way, step in steps.items():
                start = time.perf_counter()
                step()
                times[way].append(time.perf_counter() - start)
        shares = _agreement()
    median = {way: statistics.median(t) for way, t in times.items()}
    native = cpu_has_native_bf16()
    kernel = "oneDNN, native bf16" if native else "PyTorch's slow fallback"
    checks = [
        check(
            "cnn step, bf16 rounded fp32 products vs fp32",
            "fp32",
            median["fp32"],
            "bf16, rounded",
            median[WAYS[2]],
            "s",
            "(information)",
            None,
        ),
        check(
            f"cnn step, bf16 rounded fp32 products vs PyTorch's bf16 ({kernel})",
            "bf16, PyTorch",
            median[WAYS[1]],
            "bf16, rounded",
            median[WAYS[2]],
            "s",
            "(information)",
            None,
        ),
    ]
    notes = [
        f"{way}: median step {median[way]:.3f} s over {repeats} steps, 1 thread, batch 128" for way in WAYS
    ] + [
        f"{way}: entries equal to the exact result rounded to bf16: "
        + ", ".join(f"{name} {share:.2%}" for name, share in s.items())
        for way, s in shares.items()
    ]
    details = {"cpu": cpu_model(), "native_bf16": native, "median_step_s": median, "exact_share": shares}
    return section(SECTION, checks, details, notes)


def main() -> None:
    section_script(__doc__, run, "2 timed steps each")


if __name__ == "__main__":
    main()
