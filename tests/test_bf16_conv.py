"""bf16 convolutions on a CPU without native bf16 (focalbench.training.bf16_conv): correctly rounded, and used
by the training loop exactly where bf16 is asked for on such a CPU."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from focalbench.training.bf16_conv import DESCRIPTION, RoundedBf16Convolutions

BF16 = torch.bfloat16


def _operands(groups: int = 1, bias: bool = False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, 12, 12, generator=g).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(24, 16 // groups, 3, 3, generator=g).requires_grad_()
    b = torch.randn(24, generator=g).requires_grad_() if bias else None
    grad_y = torch.randn(8, 24, 6, 6, generator=g).to(BF16)  # stride 2, padding 1: 12x12 -> 6x6
    return x, w, b, grad_y


def _bf16_conv(x, w, b, grad_y, groups, rounded: bool):
    """Output and gradients of a conv under bf16 autocast, with or without RoundedBf16Convolutions."""
    for t in (x, w, b):
        if t is not None:
            t.grad = None
    with torch.autocast("cpu", dtype=BF16):
        if rounded:
            with RoundedBf16Convolutions():
                y = F.conv2d(x, w, b, stride=2, padding=1, groups=groups)
        else:
            y = F.conv2d(x, w, b, stride=2, padding=1, groups=groups)
    y.backward(grad_y)
    return y.detach(), x.grad, w.grad, None if b is None else b.grad


def _exact_then_rounded(x, w, b, grad_y, groups):
    """The same convolution of the bf16-rounded operands in fp64, each result rounded to bf16 once."""
    x64, w64 = x.detach().to(BF16).double(), w.detach().to(BF16).double()
    b64 = None if b is None else b.detach().to(BF16).double()
    y = F.conv2d(x64, w64, b64, stride=2, padding=1, groups=groups)
    grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
        grad_y.double(),
        x64,
        w64,
        None if b is None else [w.shape[0]],
        [2, 2],
        [1, 1],
        [1, 1],
        False,
        [0, 0],
        groups,
        [True, True, b is not None],
    )
    return tuple(None if t is None else t.to(BF16).float() for t in (y, grad_x, grad_w, grad_b))


@pytest.mark.parametrize("groups,bias", [(1, False), (2, True)])
def test_rounded_convolution_is_the_exact_result_rounded_to_bf16(groups, bias):
    x, w, b, grad_y = _operands(groups, bias)
    got = _bf16_conv(x, w, b, grad_y, groups, rounded=True)
    exact = _exact_then_rounded(x, w, b, grad_y, groups)
    assert got[0].dtype == BF16 and got[0].is_contiguous(memory_format=torch.channels_last)
    # The gradients reach the fp32 leaves as the fp32 values of bf16 gradients, as under autocast.
    assert got[1].dtype == got[2].dtype == torch.float32
    for name, value, reference in zip(("y", "grad_x", "grad_w", "grad_b"), got, exact, strict=True):
        if reference is None:
            continue
        assert torch.equal(value.float(), value.float().to(BF16).float()), f"{name} is not a bf16 value"
        # fp32 accumulation in another order than fp64 flips a rounding now and then, never by more than 1 ulp
        assert (value.float() == reference).float().mean() > 0.995, name
        assert torch.allclose(value.float(), reference, rtol=2**-7, atol=1e-6), name


def test_pytorchs_own_cpu_fallback_gradients_are_not_correctly_rounded():
    """The reason for the module beyond speed, measured where PyTorch falls back (no native bf16): its bf16
    convolution's backward differs from the exact rounded value in many entries. On a native-bf16 CPU oneDNN
    runs instead, and the test says so rather than measuring something else."""
    from focalbench.hardware import cpu_has_native_bf16

    if cpu_has_native_bf16():
        pytest.skip("this CPU has native bf16: oneDNN computes bf16 convolutions, not PyTorch's fallback")
    x, w, b, grad_y = _operands()
    fallback = _bf16_conv(x, w, b, grad_y, 1, rounded=False)
    exact = _exact_then_rounded(x, w, b, grad_y, 1)
    assert (fallback[2] == exact[2]).float().mean() < 0.9


def test_outside_bf16_autocast_a_convolution_runs_as_usual():
    x, w, _, _ = _operands()
    with RoundedBf16Convolutions():
        y32 = F.conv2d(x, w, padding=1)
        with torch.autocast("cpu", dtype=BF16):
            same = F.conv2d(x, w, padding="same")  # a string padding is left to PyTorch
    assert y32.dtype == torch.float32
    assert torch.equal(y32, F.conv2d(x, w, padding=1))
    assert same.dtype == BF16


def test_the_loop_rounds_bf16_convolutions_only_on_a_cpu_without_native_bf16(monkeypatch):
    from focalbench import hardware
    from focalbench.training import loop
    from focalbench.training.runner import environment

    cpu = torch.device("cpu")
    for native in (False, True):
        monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda native=native: native)
        assert loop.rounds_bf16_convolutions(cpu, "bf16") is (not native)
        assert not loop.rounds_bf16_convolutions(cpu, "fp32")
        env = environment(cpu, "bf16")
        assert env.get("bf16_convolutions") == (None if native else DESCRIPTION)
        assert "bf16_convolutions" not in environment(cpu, "fp32")
        # Under the loop's context a conv gives what RoundedBf16Convolutions gives, or PyTorch's own kernel.
        x, w, b, grad_y = _operands()
        with loop.autocast_context(cpu, "bf16"):
            y = F.conv2d(x, w, stride=2, padding=1)
        y.backward(grad_y)
        fresh = (x.detach().requires_grad_(), w.detach().requires_grad_())
        reference = _bf16_conv(*fresh, None, grad_y, 1, rounded=True)
        assert y.dtype == BF16
        if not native:  # (with native bf16, PyTorch's kernel: its summation order is its own)
            assert torch.equal(y, reference[0]) and torch.equal(w.grad, reference[2])


def _small_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    )


def _rounded_step(model, x):
    """Output and parameter gradients of one forward/backward under bf16 autocast with rounded convolutions."""
    model.zero_grad()
    with torch.autocast("cpu", dtype=BF16), RoundedBf16Convolutions():
        out = model(x)
    out.float().sum().backward()
    return [out.detach().float()] + [p.grad.clone() for p in model.parameters()]


def _compiled_step_matches_eager(backend: str) -> None:
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = _small_cnn()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    eager = _rounded_step(model, x)
    compiled = _rounded_step(torch.compile(model, backend=backend), x)
    assert not counters["graph_break"], dict(counters["graph_break"])  # the mode and Function are traced
    assert all(torch.equal(a, b) for a, b in zip(eager, compiled, strict=True))
    torch._dynamo.reset()


def test_compile_traces_the_rounded_convolutions_without_a_graph_break():
    """compile=true with rounded bf16 convolutions: dynamo traces the mode and the autograd Function whole,
    and the traced graph (aot_eager: no fusion) computes exactly the eager result, gradients included."""
    _compiled_step_matches_eager("aot_eager")


@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "g++", "clang")), reason="inductor needs a C/C++ compiler"
)
def test_inductor_computes_the_eager_rounded_result_when_it_emulates_bf16_casts(monkeypatch):
    """Inductor fuses ops and by default keeps fused intermediates in fp32 where eager rounds them to bf16 (as
    for any bf16 model); with ``emulate_precision_casts`` it rounds where eager does, and then the compiled
    rounded convolutions give exactly the eager output and gradients."""
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "emulate_precision_casts", True)
    _compiled_step_matches_eager("inductor")
