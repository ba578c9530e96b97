"""bf16 convolutions on a CPU without native bf16: bf16 operands, fp32 products, the result rounded to bf16.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` a convolution takes bf16 input and weight and returns
bf16. A CPU with native bf16 (``avx512_bf16``, ``amx_bf16``) runs it in oneDNN: bf16 operands, products
accumulated in fp32, the result rounded to bf16 once. On a CPU without, PyTorch falls back to
``aten::_slow_conv2d_*`` (im2col and a bf16 matrix product), which is about 10x slower than the fp32
convolution (a ``cnn`` training step of the ``cifar10_lt_cpu`` recipe: 5.5 s against 0.44 s on an AVX2 EPYC)
and, in its backward pass, not correctly rounded (a third to a half of the gradient entries differ by one
bf16 ulp from the exactly computed, then rounded, value).

:class:`RoundedBf16Convolutions` computes such a convolution the way the native kernel does. Its inputs
are the bf16 tensors that autocast would give the kernel; it widens them to fp32 (exact: every bf16 is an
fp32), convolves in fp32 with the fast fp32 kernel, and rounds the result to bf16 (round to nearest even, as
oneDNN does). The backward pass does the same for the input and weight gradients. Both then match the exact
result rounded to bf16 in over 99.8% of the entries (``tests/test_bf16_conv.py``), where the fallback
matches it in 15-41% of the gradient entries, depending on the convolution (``bench/bench_bf16_conv.py``).
Only the summation order differs from a native kernel, as it differs between any two kernels. Every other op (BatchNorm, GELU, pooling, the linear head) is left
to PyTorch: its bf16 CPU kernels are fast without native bf16, and the linear head's are exact already.

Used by :func:`focalbench.training.loop.autocast_factory` for ``precision=bf16`` on a CPU without native bf16;
the run's record says so (``environment.bf16_convolutions``). ``torch.compile`` traces the mode and the
Function without a graph break; inductor then keeps fused intermediates in fp32 as it does for any bf16 model
(bit-identical to eager with its ``emulate_precision_casts``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

BF16 = torch.bfloat16
# How the record names this computation (``environment.bf16_convolutions``).
DESCRIPTION = "bf16 operands, fp32 products, rounded to bf16 (no native bf16 on this CPU)"


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))


class RoundedBf16Conv2d(torch.autograd.Function):
    """``conv2d(x, w, b)`` of bf16 tensors, computed in fp32 and rounded to bf16; likewise its gradients.

    Inputs: ``x`` ``[N, C_in, H, W]``, ``w`` ``[C_out, C_in / groups, kH, kW]`` and ``b`` ``[C_out]`` or None,
    all bf16, and integer pairs ``stride``, ``padding`` (explicit zeros), ``dilation``, and ``groups``.
    Output: bf16 ``[N, C_out, H', W']`` in ``x``'s memory format. Gradients: bf16, each the fp32 gradient
    of the widened operands rounded once.
    """

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups):
        ctx.save_for_backward(x, w)
        ctx.conv = (stride, padding, dilation, groups)
        ctx.has_bias = b is not None
        with torch.autocast("cpu", enabled=False):
            y = F.conv2d(
                x.float(), w.float(), None if b is None else b.float(), stride, padding, dilation, groups
            )
        return y.to(BF16)

    @staticmethod
    def backward(ctx, grad_y):
        x, w = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_y.float(),
            x.float(),
            w.float(),
            [w.shape[0]] if ctx.has_bias else None,
            list(stride),
            list(padding),
            list(dilation),
            False,
            [0, 0],
            groups,
            wanted,
        )

        def rounded(grad):
            return None if grad is None else grad.to(BF16)

        return rounded(grad_x), rounded(grad_w), rounded(grad_b), None, None, None, None


class RoundedBf16Convolutions(TorchFunctionMode):
    """A context in which every ``conv2d`` under CPU bf16 autocast runs as :class:`RoundedBf16Conv2d`.

    Outside bf16 autocast, and for a string ``padding`` ("same", "valid"), a convolution runs as usual.
    Autocast's own casts are kept: the input and weight are cast to bf16 first (the weight's gradient reaches
    an fp32 weight as the fp32 value of a bf16 gradient, as under autocast).
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.conv2d and _bf16_autocast_on():
            call = _conv2d_arguments(*args, **kwargs)
            if call is not None:
                return RoundedBf16Conv2d.apply(*call)
        return func(*args, **kwargs)


def _bf16_autocast_on() -> bool:
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == BF16


def _conv2d_arguments(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``RoundedBf16Conv2d.apply``'s arguments for ``torch.conv2d``'s, or None for a string padding."""
    if isinstance(padding, str):
        return None
    return (
        input.to(BF16),
        weight.to(BF16),
        None if bias is None else bias.to(BF16),
        _pair(stride),
        _pair(padding),
        _pair(dilation),
        int(groups),
    )
