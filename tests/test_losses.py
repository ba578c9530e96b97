"""The loss library against PyTorch, torchvision, hand-computed values and extreme inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from focalbench.errors import ConfigError
from focalbench.losses import (
    ALPHA_MODES,
    MEAN_CONVENTION,
    MEAN_MODES,
    FocalLoss,
    class_weights,
    flsd_loss,
    focal_loss,
    ldam_loss,
    logit_adjusted_loss,
    mean_convention,
    multiclass_sigmoid_focal_loss,
    resolve_alpha,
    sigmoid_focal_loss,
)

GAMMAS = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)


def _inputs(shape: tuple[int, ...], num_classes: int, seed: int = 0, ignore: bool = True):
    """Random logits [N, C, ...] (scale 3) and targets [N, ...], some set to the ignore index."""
    gen = torch.Generator().manual_seed(seed)
    n, *rest = shape
    logits = (3 * torch.randn(n, num_classes, *rest, generator=gen)).requires_grad_()
    target = torch.randint(0, num_classes, shape, generator=gen)
    if ignore:
        target.view(-1)[::5] = -100
    return logits, target


def _value_and_grad(fn, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    value = fn(logits)
    (grad,) = torch.autograd.grad(value.sum(), logits)
    return value.detach(), grad


# --------------------------------------------------------------------------------------------
# gamma = 0 is cross-entropy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(16,), (4, 3, 5)], ids=["NC", "NCd1d2"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_gamma0_equals_cross_entropy(shape, reduction, weighted):
    num_classes = 6
    logits, target = _inputs(shape, num_classes)
    alpha = torch.tensor([0.5, 2.0, 1.0, 0.1, 3.0, 0.7]) if weighted else None
    ours, our_grad = _value_and_grad(
        lambda x: focal_loss(x, target, gamma=0.0, alpha=alpha, reduction=reduction), logits
    )
    ref, ref_grad = _value_and_grad(
        lambda x: F.cross_entropy(x, target, weight=alpha, reduction=reduction), logits
    )
    assert ours.shape == ref.shape
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(our_grad, ref_grad, atol=1e-6, rtol=1e-6)


def test_mean_denominator_is_sum_of_alpha_over_non_ignored():
    logits, target = _inputs((10,), 3)
    alpha = torch.tensor([1.0, 2.0, 4.0])
    per_element = focal_loss(logits, target, gamma=2.0, alpha=alpha, reduction="none")
    valid = target != -100
    expected = per_element.sum() / alpha[target[valid]].sum()
    torch.testing.assert_close(focal_loss(logits, target, gamma=2.0, alpha=alpha), expected)
    assert (per_element[~valid] == 0).all()
    assert "sum_i alpha_{y_i}" in MEAN_CONVENTION


def test_mean_with_everything_ignored_is_zero_not_nan():
    logits, _ = _inputs((4,), 3)
    target = torch.full((4,), -100)
    loss = focal_loss(logits, target)
    assert loss.item() == 0.0
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_binary_float_alpha_is_class1_weight():
    logits, target = _inputs((12,), 2, ignore=False)
    from_float = focal_loss(logits, target, gamma=2.0, alpha=0.25, reduction="none")
    from_list = focal_loss(logits, target, gamma=2.0, alpha=[0.75, 0.25], reduction="none")
    torch.testing.assert_close(from_float, from_list)
    unweighted = focal_loss(logits, target, gamma=2.0, reduction="none")
    expected = torch.where(target == 1, 0.25, 0.75) * unweighted
    torch.testing.assert_close(from_float, expected)


# --------------------------------------------------------------------------------------------
# Hand-computed values
# --------------------------------------------------------------------------------------------


def _two_class_logits(p_t: float) -> torch.Tensor:
    return torch.tensor([[0.0, math.log(p_t / (1 - p_t))]], dtype=torch.float64)


@pytest.mark.parametrize(("p_t", "factor"), [(0.9, 0.01), (0.6, 0.16)])
def test_hand_computed_modulating_factor(p_t, factor):
    logits, target = _two_class_logits(p_t), torch.tensor([1])
    fl = focal_loss(logits, target, gamma=2.0).item()
    ce = -math.log(p_t)
    assert fl == pytest.approx(factor * ce, rel=1e-12)
    assert ce / fl == pytest.approx(1 / factor, rel=1e-12)  # 100x and 6.25x below CE
    fl32 = focal_loss(logits.float(), target, gamma=2.0).item()
    assert fl32 == pytest.approx(factor * ce, rel=1e-5)


def test_three_class_hand_computed():
    # p = softmax([1, 2, 3]); target 0, gamma = 1, alpha_0 = 0.5: loss = -0.5 (1 - p_0) log p_0.
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    e = [math.exp(v) for v in (1.0, 2.0, 3.0)]
    p0 = e[0] / sum(e)
    expected = -0.5 * (1 - p0) * math.log(p0)
    loss = focal_loss(logits, torch.tensor([0]), gamma=1.0, alpha=[0.5, 1.0, 1.0], reduction="sum")
    assert loss.item() == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, [0.2, 1.0, 3.0]], ids=["no_alpha", "alpha"])
def test_gradcheck_float64(gamma, alpha):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 3, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (5, 2), generator=gen)
    target[0, 0] = -100
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, target, gamma=gamma, alpha=alpha), (logits,))
    assert torch.autograd.gradcheck(
        lambda x: focal_loss(x, target, gamma=gamma, alpha=alpha, reduction="none"), (logits,)
    )


def test_gradient_flows_through_modulating_factor():
    logits, target = _inputs((8,), 4, ignore=False)
    _, grad = _value_and_grad(lambda x: focal_loss(x, target, gamma=2.0), logits)

    def detached_factor(x):
        log_p = F.log_softmax(x, dim=1)
        log_pt = log_p.gather(1, target[:, None]).squeeze(1)
        return (-((1 - log_pt.exp()).detach() ** 2) * log_pt).mean()

    value_detached, grad_detached = _value_and_grad(detached_factor, logits)
    torch.testing.assert_close(focal_loss(logits, target, gamma=2.0), value_detached)
    assert (grad - grad_detached).abs().max() > 1e-3

    # Central finite difference on one logit, in float64.
    x64 = logits.detach().double()
    eps = 1e-6
    bumped_up, bumped_down = x64.clone(), x64.clone()
    bumped_up[0, 1] += eps
    bumped_down[0, 1] -= eps
    fd = (focal_loss(bumped_up, target) - focal_loss(bumped_down, target)) / (2 * eps)
    assert grad[0, 1].item() == pytest.approx(fd.item(), rel=1e-4, abs=1e-7)


# --------------------------------------------------------------------------------------------
# Extreme logits
# --------------------------------------------------------------------------------------------

# Rows: p_t -> 1 at 1e4, p_t -> 0 at 1e4, p_t -> 1 moderately (p_t = 1 - 2e-13), p_t -> 0 moderately.
EXTREME_LOGITS = [
    [1e4, -1e4, 0.0],
    [-1e4, 1e4, 0.0],
    [30.0, 0.0, 0.0],
    [-30.0, 0.0, 0.0],
    [1e4, 1e4, -1e4],
]


def _naive_focal(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    p_t = F.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    return -((1 - p_t) ** gamma * torch.log(p_t)).sum()


def test_naive_formula_fails_on_extreme_inputs():
    """The inputs below are hard: a textbook implementation gives a NaN or infinite value or gradient."""
    logits = torch.tensor(EXTREME_LOGITS, requires_grad=True)
    target = torch.zeros(len(EXTREME_LOGITS), dtype=torch.long)
    value, grad = _value_and_grad(lambda x: _naive_focal(x, target, 0.5), logits)
    assert not (torch.isfinite(value).all() and torch.isfinite(grad).all())


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize(
    "autocast_dtype", [None, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"]
)
def test_finite_at_extreme_logits(gamma, autocast_dtype):
    weights = torch.tensor(EXTREME_LOGITS, requires_grad=True)
    target = torch.zeros(len(EXTREME_LOGITS), dtype=torch.long)
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        # A matmul so that, under autocast, the logits really arrive in half precision.
        logits = weights @ torch.eye(3)
        if autocast_dtype is not None:
            assert logits.dtype == autocast_dtype
        loss = focal_loss(logits, target, gamma=gamma, alpha=[1.0, 2.0, 0.5], reduction="none")
    assert loss.dtype == torch.float32
    (grad,) = torch.autograd.grad(loss.sum(), weights)
    assert torch.isfinite(loss).all()
    assert torch.isfinite(grad).all()
    # Confident and right costs nothing; confident and wrong costs about the logit gap.
    assert loss[0].item() == pytest.approx(0.0, abs=1e-6)
    assert loss[1].item() == pytest.approx(2e4, rel=1e-2)


def test_autocast_result_matches_float32():
    logits, target = _inputs((16,), 5)
    reference = focal_loss(logits, target, gamma=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = focal_loss(logits, target, gamma=0.5)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, reference)


# --------------------------------------------------------------------------------------------
# Sigmoid focal loss against torchvision
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [0.25, 0.75, -1.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sigmoid_matches_torchvision(gamma, alpha, reduction):
    gen = torch.Generator().manual_seed(2)
    logits = (3 * torch.randn(6, 4, generator=gen)).requires_grad_()
    target = torch.randint(0, 2, (6, 4), generator=gen).float()
    target[0] = torch.tensor([0.3, 0.5, 0.9, 0.0])  # soft labels
    ours, our_grad = _value_and_grad(lambda x: sigmoid_focal_loss(x, target, gamma, alpha, reduction), logits)
    ref, ref_grad = _value_and_grad(
        lambda x: tv_sigmoid_focal_loss(x, target, alpha, gamma, reduction), logits
    )
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(our_grad, ref_grad, atol=1e-6, rtol=1e-5)


def test_sigmoid_alpha_none_means_unweighted():
    logits, target = torch.randn(10), torch.randint(0, 2, (10,)).float()
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, target, alpha=None), sigmoid_focal_loss(logits, target, alpha=-1)
    )
    assert not torch.allclose(
        sigmoid_focal_loss(logits, target, alpha=None), sigmoid_focal_loss(logits, target)
    )


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.9])
def test_sigmoid_finite_where_torchvision_is_not(gamma):
    logits = torch.tensor([1e4, -1e4, 100.0, -100.0], requires_grad=True)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0])
    ref, ref_grad = _value_and_grad(lambda x: tv_sigmoid_focal_loss(x, target, 0.25, gamma, "sum"), logits)
    assert not torch.isfinite(ref_grad).all()  # torchvision: NaN gradient from (1 - p_t)^gamma at 0
    ours, our_grad = _value_and_grad(lambda x: sigmoid_focal_loss(x, target, gamma, 0.25, "sum"), logits)
    assert torch.isfinite(ours).all() and torch.isfinite(our_grad).all()
    assert ours.item() == pytest.approx(0.0, abs=1e-30)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize(
    "autocast_dtype", [None, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"]
)
def test_sigmoid_finite_at_extreme_logits(gamma, autocast_dtype):
    weights = torch.tensor([1e4, -1e4, 1e4, -1e4, 30.0, -30.0], requires_grad=True)
    target = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        logits = (weights[None, :] @ torch.eye(6)).squeeze(0)
        loss = sigmoid_focal_loss(logits, target, gamma, 0.25)
    assert loss.dtype == torch.float32
    (grad,) = torch.autograd.grad(loss.sum(), weights)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert loss[2].item() == pytest.approx(0.75 * 1e4, rel=1e-2)  # confidently wrong negative


# --------------------------------------------------------------------------------------------
# Class weights and resolve_alpha
# --------------------------------------------------------------------------------------------

COUNTS = [100, 25, 4]


def test_class_weights_hand_computed():
    # inverse_freq raw = [1/100, 1/25, 1/4] = [0.01, 0.04, 0.25], sum 0.3 -> x 3/0.3 = x 10.
    torch.testing.assert_close(class_weights(COUNTS, "inverse_freq"), torch.tensor([0.1, 0.4, 2.5]))
    torch.testing.assert_close(
        class_weights(COUNTS, "inverse_freq", normalize="none"), torch.tensor([0.01, 0.04, 0.25])
    )
    # inverse_sqrt_freq raw = [0.1, 0.2, 0.5], sum 0.8 -> x 3.75.
    torch.testing.assert_close(class_weights(COUNTS, "inverse_sqrt_freq"), torch.tensor([0.375, 0.75, 1.875]))
    # effective_num, beta = 0.9: (1 - 0.9) / (1 - 0.9^n) for n = 100, 25, 4.
    raw = torch.tensor([0.1 / (1 - 0.9**100), 0.1 / 0.92820989, 0.1 / 0.3439])
    torch.testing.assert_close(class_weights(COUNTS, "effective_num", beta=0.9, normalize="none"), raw)
    torch.testing.assert_close(class_weights(COUNTS, "effective_num", beta=0.9), raw * 3 / raw.sum())
    torch.testing.assert_close(class_weights(COUNTS, "none"), torch.ones(3))


@pytest.mark.parametrize("mode", ALPHA_MODES)
def test_class_weights_sum_to_c(mode):
    w = class_weights([5000, 1200, 300, 50], mode)
    assert w.dtype == torch.float32 and w.shape == (4,)
    assert w.sum().item() == pytest.approx(4.0, rel=1e-6)
    if mode != "none":
        assert torch.all(w[1:] > w[:-1])  # rarer class, larger weight


def test_effective_num_limits():
    counts = [5000, 500, 50]
    near_one = class_weights(counts, "effective_num", beta=1 - 1e-9)
    torch.testing.assert_close(near_one, class_weights(counts, "inverse_freq"), rtol=1e-4, atol=1e-6)
    default = class_weights(counts, "effective_num")
    # beta = 0.9999 sits between uniform and inverse frequency: milder than 1/n_c for the rarest class.
    assert 1.0 < default[-1].item() < near_one[-1].item()
    torch.testing.assert_close(class_weights(counts, "effective_num", beta=0.0), torch.ones(3))
    torch.testing.assert_close(class_weights(counts, "effective_num", beta=1e-6), torch.ones(3))


def test_resolve_alpha():
    assert resolve_alpha(None, [10, 5]) is None
    assert resolve_alpha("none", None) is None
    torch.testing.assert_close(resolve_alpha("inverse_freq", COUNTS), class_weights(COUNTS, "inverse_freq"))
    torch.testing.assert_close(
        resolve_alpha("effective_num", COUNTS, beta=0.9, normalize="none"),
        class_weights(COUNTS, "effective_num", beta=0.9, normalize="none"),
    )
    torch.testing.assert_close(resolve_alpha(0.25, [900, 100]), torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(resolve_alpha([1, 2, 3], COUNTS), torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(
        resolve_alpha(torch.tensor([1.0, 0.0, 3.0]), COUNTS), torch.tensor([1.0, 0.0, 3.0])
    )


# --------------------------------------------------------------------------------------------
# The module wrapper
# --------------------------------------------------------------------------------------------


def test_focal_loss_module_matches_function_and_holds_alpha_buffer():
    logits, target = _inputs((4, 7), 3)
    module = FocalLoss(gamma=1.5, alpha=[0.5, 1.0, 2.0], reduction="sum", ignore_index=-100)
    assert "alpha" in dict(module.named_buffers())
    assert module.to(torch.float64).alpha.dtype == torch.float64  # a buffer follows .to()
    torch.testing.assert_close(
        module(logits, target), focal_loss(logits, target, gamma=1.5, alpha=[0.5, 1.0, 2.0], reduction="sum")
    )
    text = repr(module)
    assert "gamma=1.5" in text and "alpha=[0.5, 1, 2]" in text and "reduction='sum'" in text


def test_focal_loss_module_binary_float_alpha():
    logits, target = _inputs((8,), 2)
    module = FocalLoss(alpha=0.25)
    torch.testing.assert_close(module(logits, target), focal_loss(logits, target, alpha=0.25))
    assert "0.25" in repr(module)
    with pytest.raises(ConfigError, match=r"alpha=0\.25 is a float.*list of 3 per-class weights"):
        module(*_inputs((8,), 3))


# --------------------------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------------------------

LOGITS3, TARGET3 = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": -1.0}, r"gamma must be a finite number >= 0"),
        ({"gamma": float("nan")}, r"gamma must be a finite number"),
        ({"gamma": float("inf")}, r"gamma must be a finite number"),
        ({"reduction": "avg"}, r"reduction must be one of none, mean, sum"),
        ({"alpha": 0.25}, r"alpha=0\.25 is a float.*binary.*list of 3 per-class weights.*inverse_freq"),
        ({"alpha": [1.0, 2.0]}, r"alpha must hold one weight per class \(C=3\), got 2"),
        ({"alpha": [1.0, -2.0, 1.0]}, r"alpha must hold finite weights >= 0; class 1"),
        ({"alpha": [1.0, float("nan"), 1.0]}, r"alpha must hold finite weights >= 0; class 1"),
        ({"alpha": 1.5}, r"alpha as a float must lie in \[0, 1\]"),
        ({"alpha": "inverse_freq"}, r"alpha must be None, a float in \[0, 1\]"),
    ],
)
def test_focal_loss_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        focal_loss(LOGITS3, TARGET3, **kwargs)
    # The module checks the same things, at construction or (for C-dependent ones) in forward.
    with pytest.raises(ConfigError, match=match):
        FocalLoss(**kwargs)(LOGITS3, TARGET3)


@pytest.mark.parametrize(
    ("logits", "target", "match"),
    [
        (LOGITS3, torch.tensor([0, 1, 3, 1]), r"target values must be class indices in \[0, 3\).*found 3"),
        (LOGITS3, torch.tensor([0, -1, 2, 1]), r"target values .*found -1"),
        (LOGITS3, torch.tensor([0, 1, 2]), r"target shape \(3,\) does not match logits shape \(4, 3\)"),
        (torch.randn(4, 3, 5), TARGET3, r"target shape \(4,\) does not match"),
        (LOGITS3, TARGET3.float(), r"target must hold integer class indices"),
        (torch.randn(4), TARGET3, r"logits must have shape \[N, C\]"),
        (torch.randn(4, 1), torch.zeros(4, dtype=torch.long), r"logits must have at least C=2"),
    ],
)
def test_focal_loss_bad_tensors(logits, target, match):
    with pytest.raises(ValueError, match=match):
        focal_loss(logits, target)


def test_sigmoid_bad_arguments():
    x, t = torch.randn(5), torch.rand(5)
    with pytest.raises(ConfigError, match=r"gamma must be"):
        sigmoid_focal_loss(x, t, gamma=-0.5)
    with pytest.raises(ConfigError, match=r"alpha must be in \[0, 1\]"):
        sigmoid_focal_loss(x, t, alpha=2.0)
    with pytest.raises(ConfigError, match=r"reduction must be one of"):
        sigmoid_focal_loss(x, t, reduction="batchmean")
    with pytest.raises(ValueError, match=r"target shape \(4,\) must equal logits shape \(5,\)"):
        sigmoid_focal_loss(x, t[:4])
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 1\]"):
        sigmoid_focal_loss(x, t + 1.5)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (
            ([10, 5], "balanced"),
            {},
            r"mode must be one of none, inverse_freq, inverse_sqrt_freq, effective_num",
        ),
        (([10, 5], "inverse_freq"), {"normalize": "max"}, r"normalize must be one of sum_to_C, none"),
        (([10, 5], "effective_num"), {"beta": 1.0}, r"beta must be in \[0, 1\)"),
        (([10, 5], "effective_num"), {"beta": -0.1}, r"beta must be in \[0, 1\)"),
        (([10, 0, 5], "inverse_freq"), {}, r"counts must be finite and > 0 .*class 1 has count 0"),
        (([10, 5, -2], "effective_num"), {}, r"counts .*class 2 has count -2"),
        (([10, -1], "none"), {}, r"counts must be finite and >= 0; class 1"),
        (([], "none"), {}, r"counts must hold one sample count per class"),
    ],
)
def test_class_weights_bad_arguments(args, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        class_weights(*args, **kwargs)


def test_class_weights_zero_count_allowed_for_mode_none():
    torch.testing.assert_close(class_weights([10, 0], "none"), torch.ones(2))


@pytest.mark.parametrize(
    ("alpha", "counts", "match"),
    [
        (0.25, [10, 5, 1], r"alpha=0\.25 is a float.*C=3.*list of 3 per-class weights"),
        (1.5, [10, 5], r"alpha as a float must lie in \[0, 1\]"),
        ("inverse", [10, 5], r"alpha must be .* or one of none, inverse_freq"),
        ([1.0, 2.0], [10, 5, 1], r"alpha must hold one weight per class \(C=3\)"),
        ([1.0, -2.0], [10, 5], r"alpha must hold finite weights >= 0"),
        ("inverse_freq", None, r"counts is None"),
    ],
)
def test_resolve_alpha_bad_arguments(alpha, counts, match):
    with pytest.raises(ConfigError, match=match):
        resolve_alpha(alpha, counts)


# --------------------------------------------------------------------------------------------
# One contract for every public loss: ignore_index and the mean's denominator
# --------------------------------------------------------------------------------------------

LT_COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # CIFAR-10-LT, rho = 100

# Every public multi-class loss, called with its own required arguments; each takes alpha, reduction,
# ignore_index and mean.
PUBLIC_LOSSES = {
    "focal_loss": lambda z, y, **kw: focal_loss(z, y, gamma=2.0, **kw),
    "focal_loss_gamma0": lambda z, y, **kw: focal_loss(z, y, gamma=0.0, **kw),
    "flsd_loss": lambda z, y, **kw: flsd_loss(z, y, **kw),
    "ldam_loss": lambda z, y, **kw: ldam_loss(z, y, LT_COUNTS, **kw),
    "logit_adjusted_loss": lambda z, y, **kw: logit_adjusted_loss(z, y, LT_COUNTS, tau=1.0, **kw),
    "multiclass_sigmoid_focal_loss": lambda z, y, **kw: multiclass_sigmoid_focal_loss(z, y, gamma=2.0, **kw),
    "multiclass_sigmoid_focal_loss_gamma0": lambda z, y, **kw: multiclass_sigmoid_focal_loss(z, y, 0.0, **kw),
}


def _long_tailed_batch(n: int = 96, seed: int = 3, dtype=torch.float32):
    """Logits [n, 10] and targets drawn with the class frequencies of CIFAR-10-LT (so alpha varies a lot)."""
    gen = torch.Generator().manual_seed(seed)
    probs = torch.tensor(LT_COUNTS, dtype=torch.float64)
    target = torch.multinomial(probs / probs.sum(), n, replacement=True, generator=gen)
    target[:3] = torch.tensor([9, 8, 7])  # the rarest classes are in the batch
    logits = 2 * torch.randn(n, 10, generator=gen, dtype=dtype)
    return logits, target


EFFECTIVE_NUM = class_weights(LT_COUNTS, "effective_num")


@pytest.mark.parametrize("name", sorted(PUBLIC_LOSSES))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("mean", ["weights", "batch"])
@pytest.mark.parametrize("alpha", [None, EFFECTIVE_NUM], ids=["no_alpha", "effective_num"])
@pytest.mark.parametrize("ignore_index", [-100, 255])
def test_an_ignored_target_is_as_if_its_row_were_absent(name, reduction, mean, alpha, ignore_index):
    """Value and gradient with row 5 ignored equal those of the batch without row 5; its gradient is 0."""
    fn = PUBLIC_LOSSES[name]
    logits, target = _long_tailed_batch(n=24)
    ignored = target.clone()
    ignored[5] = ignore_index
    keep = torch.arange(24) != 5
    kwargs = {"alpha": alpha, "reduction": reduction, "mean": mean, "ignore_index": ignore_index}
    with_ignored, grad = _value_and_grad(lambda x: fn(x, ignored, **kwargs), logits.clone().requires_grad_())
    without, grad_without = _value_and_grad(
        lambda x: fn(x, target[keep], **kwargs), logits[keep].clone().requires_grad_()
    )
    torch.testing.assert_close(with_ignored, without, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad[keep], grad_without, rtol=1e-6, atol=1e-8)
    assert torch.equal(grad[5], torch.zeros(10))


@pytest.mark.parametrize("name", sorted(PUBLIC_LOSSES))
@pytest.mark.parametrize("alpha", [None, EFFECTIVE_NUM], ids=["no_alpha", "effective_num"])
def test_reduction_none_is_zero_at_an_ignored_row_and_the_rest_unchanged(name, alpha):
    fn = PUBLIC_LOSSES[name]
    logits, target = _long_tailed_batch(n=16)
    ignored = target.clone()
    ignored[[2, 11]] = -100
    per = fn(logits, ignored, alpha=alpha, reduction="none")
    full = fn(logits, target, alpha=alpha, reduction="none")
    assert per.shape == (16,) and per.dtype == torch.float32
    assert per[2].item() == 0.0 and per[11].item() == 0.0
    keep = (ignored != -100).nonzero().squeeze(1)
    torch.testing.assert_close(per[keep], full[keep], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(PUBLIC_LOSSES))
@pytest.mark.parametrize("mean", ["weights", "batch"])
@pytest.mark.parametrize("alpha", [None, EFFECTIVE_NUM], ids=["no_alpha", "effective_num"])
def test_a_mean_with_every_target_ignored_is_zero_with_zero_gradient(name, mean, alpha):
    logits = torch.randn(6, 10, requires_grad=True)
    value, grad = _value_and_grad(
        lambda x: PUBLIC_LOSSES[name](x, torch.full((6,), -100), alpha=alpha, mean=mean), logits
    )
    assert value.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("name", sorted(PUBLIC_LOSSES))
def test_flsd_and_ldam_no_longer_crash_on_an_ignored_target(name):
    """The original report: a -100 target crashed flsd_loss and ldam_loss with an indexing error."""
    logits, target = torch.randn(4, 10), torch.tensor([0, 1, -100, 3])
    assert torch.isfinite(PUBLIC_LOSSES[name](logits, target))


@pytest.mark.parametrize("name", sorted(PUBLIC_LOSSES))
def test_mean_batch_is_mean_weights_times_sum_of_alpha_over_n(name):
    """On a long-tailed batch with effective-number weights: batch = weights * (sum_i alpha_{y_i}) / N, in value
    and gradient (float64, so the two orders of rounding agree to 1e-12)."""
    fn = PUBLIC_LOSSES[name]
    logits, target = _long_tailed_batch(dtype=torch.float64)
    target[::7] = -100  # N counts the non-ignored examples only
    valid = target != -100
    alpha = EFFECTIVE_NUM.double()
    factor = alpha[target[valid]].sum() / valid.sum()
    assert not math.isclose(factor.item(), 1.0, rel_tol=0.05)  # the two rules really differ here
    by_weights, grad_weights = _value_and_grad(
        lambda x: fn(x, target, alpha=alpha, mean="weights"), logits.clone().requires_grad_()
    )
    by_batch, grad_batch = _value_and_grad(
        lambda x: fn(x, target, alpha=alpha, mean="batch"), logits.clone().requires_grad_()
    )
    torch.testing.assert_close(by_batch, by_weights * factor, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad_batch, grad_weights * factor, rtol=1e-12, atol=1e-15)
    # Cui et al.'s rule spelled out: the alpha-weighted sum over N.
    per = fn(logits, target, alpha=alpha, reduction="none")
    torch.testing.assert_close(by_batch, per.sum() / valid.sum(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", sorted(PUBLIC_LOSSES))
def test_without_alpha_both_means_are_the_plain_mean(name):
    logits, target = _long_tailed_batch()
    fn = PUBLIC_LOSSES[name]
    assert torch.equal(fn(logits, target, mean="batch"), fn(logits, target, mean="weights"))


@pytest.mark.parametrize("name", sorted(PUBLIC_LOSSES))
def test_the_default_mean_is_the_weights_rule_bit_for_bit(name):
    logits, target = _long_tailed_batch()
    fn = PUBLIC_LOSSES[name]
    assert torch.equal(
        fn(logits, target, alpha=EFFECTIVE_NUM), fn(logits, target, alpha=EFFECTIVE_NUM, mean="weights")
    )


def test_default_mean_with_gamma0_and_effective_num_is_weighted_cross_entropy():
    logits, target = _long_tailed_batch()
    ours, our_grad = _value_and_grad(
        lambda x: focal_loss(x, target, gamma=0.0, alpha=EFFECTIVE_NUM), logits.clone().requires_grad_()
    )
    ref, ref_grad = _value_and_grad(
        lambda x: F.cross_entropy(x, target, weight=EFFECTIVE_NUM), logits.clone().requires_grad_()
    )
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(our_grad, ref_grad, rtol=1e-6, atol=1e-8)
    # logit_adjusted with tau = 0 is F.cross_entropy itself on the default path: the same bits.
    la = logit_adjusted_loss(logits, target, LT_COUNTS, tau=0.0, alpha=EFFECTIVE_NUM)
    assert torch.equal(la, F.cross_entropy(logits, target, weight=EFFECTIVE_NUM))


def test_mean_convention_sentences():
    assert mean_convention("weights") == MEAN_CONVENTION
    assert "sum_i alpha_{y_i}" in MEAN_CONVENTION
    assert "by N" in mean_convention("batch") and "Cui et al." in mean_convention("batch")
    assert MEAN_MODES == ("weights", "batch")
    from focalbench.config import MEAN_MODES as CONFIG_MEAN_MODES

    assert CONFIG_MEAN_MODES == MEAN_MODES  # repeated there to validate configs without torch
    with pytest.raises(ConfigError, match=r"mean must be one of weights, batch"):
        mean_convention("sum")


@pytest.mark.parametrize("name", sorted(PUBLIC_LOSSES))
def test_a_bad_mean_is_a_one_line_config_error(name):
    with pytest.raises(ConfigError, match=r"mean must be one of weights, batch.*got 'avg'") as info:
        PUBLIC_LOSSES[name](*_long_tailed_batch(), mean="avg")
    assert "\n" not in str(info.value)


def test_focal_loss_module_takes_mean():
    logits, target = _long_tailed_batch()
    module = FocalLoss(gamma=2.0, alpha=EFFECTIVE_NUM, mean="batch")
    torch.testing.assert_close(
        module(logits, target), focal_loss(logits, target, gamma=2.0, alpha=EFFECTIVE_NUM, mean="batch")
    )
    assert "mean='batch'" in repr(module)
    with pytest.raises(ConfigError, match=r"mean must be one of"):
        FocalLoss(mean="N")


# --------------------------------------------------------------------------------------------
# Training criteria: loss.mean, and per-example losses with reduction="none"
# --------------------------------------------------------------------------------------------

# One preset per registered loss name (balanced_ce and balanced_softmax are presets of ce and
# logit_adjusted; ldam_drw of ldam).
CRITERION_PRESETS = {
    "ce": ["loss=ce"],
    "focal": ["loss=focal", "gamma=2"],
    "flsd53": ["loss=flsd53"],
    "ldam": ["loss=ldam"],
    "logit_adjusted": ["loss=logit_adjusted"],
    "sigmoid_focal": ["loss=sigmoid_focal"],
}


def _criterion(name: str, *overrides: str):
    from focalbench.config import compose
    from focalbench.registry import LOSSES

    cfg = compose([*CRITERION_PRESETS[name], *overrides])
    return LOSSES.get(name).build(cfg, LT_COUNTS, torch.device("cpu"))


def test_every_registered_loss_has_a_preset_here():
    from focalbench.registry import LOSSES

    assert set(LOSSES.names()) <= set(CRITERION_PRESETS)


@pytest.mark.parametrize("name", sorted(CRITERION_PRESETS))
@pytest.mark.parametrize("mean", ["weights", "batch"])
@pytest.mark.parametrize("alpha", [None, EFFECTIVE_NUM], ids=["no_alpha", "effective_num"])
def test_criterion_per_example_losses_reduce_to_its_scalar(name, mean, alpha):
    """reduction="none" gives the alpha-weighted per-example losses [N] (float32, with gradient) whose mean
    under the config's loss.mean is the scalar the default call returns."""
    criterion = _criterion(name, f"loss.mean={mean}")
    logits, target = _long_tailed_batch()
    scalar = criterion(logits, target, alpha)
    per = criterion(logits.clone().requires_grad_(), target, alpha, reduction="none")
    assert per.shape == target.shape and per.dtype == torch.float32 and per.requires_grad
    n = target.numel()
    denominator = n if mean == "batch" or alpha is None else alpha[target].sum()
    torch.testing.assert_close(per.sum() / denominator, scalar, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(criterion(logits, target, alpha, reduction="sum"), per.sum().detach())
    assert torch.equal(criterion(logits, target, alpha, reduction="mean"), scalar)


@pytest.mark.parametrize("name", sorted(CRITERION_PRESETS))
def test_criterion_mean_batch_is_weights_times_sum_of_alpha_over_n(name):
    logits, target = _long_tailed_batch()
    factor = EFFECTIVE_NUM[target].sum() / target.numel()
    by_weights = _criterion(name, "loss.mean=weights")(logits, target, EFFECTIVE_NUM)
    by_batch = _criterion(name, "loss.mean=batch")(logits, target, EFFECTIVE_NUM)
    torch.testing.assert_close(by_batch, by_weights * factor, rtol=1e-6, atol=0)


@pytest.mark.parametrize("alpha", [None, EFFECTIVE_NUM], ids=["no_alpha", "effective_num"])
def test_default_criteria_compute_what_they_computed_before(alpha):
    """The default path is the same ops as before loss.mean and reduction= existed: the same bits."""
    from focalbench.losses.ldam import ldam_margins
    from focalbench.losses.logit_adjusted import log_priors

    logits, target = _long_tailed_batch()
    assert torch.equal(_criterion("ce")(logits, target, alpha), F.cross_entropy(logits, target, weight=alpha))
    offset = log_priors(LT_COUNTS, 10).float()
    assert torch.equal(
        _criterion("logit_adjusted")(logits, target, alpha),
        F.cross_entropy(logits + offset, target, weight=alpha),
    )
    margins = ldam_margins(LT_COUNTS, 0.5).float()
    shifted = logits.scatter_add(1, target.unsqueeze(1), -margins[target].unsqueeze(1))
    assert torch.equal(
        _criterion("ldam")(logits, target, alpha), F.cross_entropy(30.0 * shifted, target, weight=alpha)
    )
    assert torch.equal(_criterion("focal")(logits, target, alpha), focal_loss(logits, target, 2.0, alpha))
    assert torch.equal(_criterion("flsd53")(logits, target, alpha), flsd_loss(logits, target, alpha=alpha))


def test_criteria_reject_a_bad_reduction():
    logits, target = _long_tailed_batch()
    for name in CRITERION_PRESETS:
        with pytest.raises(ConfigError, match=r"reduction must be one of none, mean, sum"):
            _criterion(name)(logits, target, None, reduction="batchmean")


# --------------------------------------------------------------------------------------------
# Multi-class sigmoid (one-vs-all) focal loss
# --------------------------------------------------------------------------------------------


def _one_vs_all_reference(logits, target, gamma, alpha=None):
    """Per-example alpha_{y_i} sum_c (1 - p_t,ic)^gamma (-log p_t,ic), straight from the formula, in float64."""
    z = logits.double()
    y = F.one_hot(target, z.shape[1]).double()
    p = torch.sigmoid(z)
    p_t = p * y + (1 - p) * (1 - y)
    per = ((1 - p_t) ** gamma * -torch.log(p_t)).sum(dim=1)
    return per if alpha is None else per * alpha.double()[target]


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [None, EFFECTIVE_NUM], ids=["no_alpha", "effective_num"])
def test_multiclass_sigmoid_focal_equals_the_formula_in_float64(gamma, alpha):
    gen = torch.Generator().manual_seed(6)
    logits = 3 * torch.randn(32, 10, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 10, (32,), generator=gen)
    ref = _one_vs_all_reference(logits, target, gamma, alpha)
    per = multiclass_sigmoid_focal_loss(logits, target, gamma, alpha=alpha, reduction="none")
    assert per.dtype == torch.float64
    torch.testing.assert_close(per, ref, rtol=1e-12, atol=1e-14)
    weights = torch.ones(32, dtype=torch.float64) if alpha is None else alpha.double()[target]
    by_weights = multiclass_sigmoid_focal_loss(logits, target, gamma, alpha=alpha)
    by_batch = multiclass_sigmoid_focal_loss(logits, target, gamma, alpha=alpha, mean="batch")
    torch.testing.assert_close(by_weights, ref.sum() / weights.sum(), rtol=1e-12, atol=0)
    torch.testing.assert_close(by_batch, ref.sum() / 32, rtol=1e-12, atol=0)
    # float32 logits: float32 result, the same numbers to float32 precision
    per32 = multiclass_sigmoid_focal_loss(logits.float(), target, gamma, alpha=alpha, reduction="none")
    assert per32.dtype == torch.float32
    torch.testing.assert_close(per32.double(), ref, rtol=2e-6, atol=1e-6)


def test_multiclass_sigmoid_focal_gamma0_is_one_vs_all_bce():
    """gamma = 0, no alpha: BCE with logits against one-hot targets, summed over the classes, over N."""
    logits, target = _long_tailed_batch()
    ours, our_grad = _value_and_grad(
        lambda x: multiclass_sigmoid_focal_loss(x, target, gamma=0.0), logits.clone().requires_grad_()
    )
    one_hot = F.one_hot(target, 10).float()
    ref, ref_grad = _value_and_grad(
        lambda x: F.binary_cross_entropy_with_logits(x, one_hot, reduction="sum") / target.numel(),
        logits.clone().requires_grad_(),
    )
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(our_grad, ref_grad, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
def test_multiclass_sigmoid_focal_matches_torchvision_summed_over_classes(gamma):
    gen = torch.Generator().manual_seed(8)
    logits = (3 * torch.randn(20, 7, generator=gen)).requires_grad_()
    target = torch.randint(0, 7, (20,), generator=gen)
    one_hot = F.one_hot(target, 7).float()
    ours, our_grad = _value_and_grad(
        lambda x: multiclass_sigmoid_focal_loss(x, target, gamma, reduction="none"), logits
    )
    ref, ref_grad = _value_and_grad(
        lambda x: tv_sigmoid_focal_loss(x, one_hot, alpha=-1, gamma=gamma, reduction="none").sum(dim=1),
        logits,
    )
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(our_grad, ref_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize(
    "autocast_dtype", [None, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"]
)
def test_multiclass_sigmoid_focal_finite_at_saturated_logits(gamma, autocast_dtype):
    # rows: confidently right, confidently wrong, confidently right about a negative only, all saturated
    weights = torch.tensor(
        [[1e4, -1e4, -1e4], [-1e4, 1e4, -1e4], [0.0, -1e4, -1e4], [1e4, 1e4, 1e4]], requires_grad=True
    )
    target = torch.tensor([0, 0, 0, 2])
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        logits = weights @ torch.eye(3)
        loss = multiclass_sigmoid_focal_loss(logits, target, gamma, alpha=[1.0, 2.0, 0.5], reduction="none")
    assert loss.dtype == torch.float32
    (grad,) = torch.autograd.grad(loss.sum(), weights)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert loss[0].item() == pytest.approx(0.0, abs=1e-6)  # confident and right costs nothing
    assert loss[1].item() == pytest.approx(2e4, rel=1e-2)  # wrong twice (class 0 low, class 1 high), 1e4 each
    assert loss[3].item() == pytest.approx(0.5 * 2e4, rel=1e-2)  # two negatives high, weight alpha_2 = 0.5


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_multiclass_sigmoid_focal_gradcheck(gamma):
    gen = torch.Generator().manual_seed(9)
    logits = torch.randn(6, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 3, -100, 1, 2, 2])
    for reduction in ("mean", "none"):
        assert torch.autograd.gradcheck(
            lambda x, r=reduction: multiclass_sigmoid_focal_loss(x, target, gamma, [0.5, 1, 2, 3], r),
            (logits,),
        )


def test_class_balanced_sigmoid_focal_is_the_weighted_sum_over_n():
    """loss=sigmoid_focal alpha=effective_num (mean=batch from the preset) trains on sum_i alpha_{y_i} l_i / N,
    Cui et al.'s class-balanced focal loss."""
    from focalbench.config import compose
    from focalbench.registry import LOSSES

    cfg = compose(["loss=sigmoid_focal", "alpha=effective_num"])
    assert cfg.loss.mean == "batch" and cfg.gamma == 2.0 and cfg.loss.prior == 0.01
    alpha = resolve_alpha(cfg.alpha, LT_COUNTS, beta=cfg.loss.beta)
    criterion = LOSSES.get("sigmoid_focal").build(cfg, LT_COUNTS, torch.device("cpu"))
    logits, target = _long_tailed_batch()
    one_hot = F.one_hot(target, 10).float()
    per = tv_sigmoid_focal_loss(logits, one_hot, alpha=-1, gamma=2.0, reduction="none").sum(dim=1)
    expected = (alpha[target] * per).sum() / target.numel()
    torch.testing.assert_close(criterion(logits, target, alpha), expected, rtol=1e-5, atol=0)


def test_multiclass_sigmoid_focal_bad_arguments():
    logits, target = _long_tailed_batch()
    with pytest.raises(ConfigError, match=r"gamma must be a finite number >= 0"):
        multiclass_sigmoid_focal_loss(logits, target, gamma=-1.0)
    with pytest.raises(ConfigError, match=r"alpha must hold one weight per class \(C=10\)"):
        multiclass_sigmoid_focal_loss(logits, target, alpha=[1.0, 2.0])
    with pytest.raises(ConfigError, match=r"takes logits \[N, C\]"):
        multiclass_sigmoid_focal_loss(torch.randn(4, 3, 2), torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target values must be class indices in \[0, 10\)"):
        multiclass_sigmoid_focal_loss(logits, torch.full_like(target, 10))
