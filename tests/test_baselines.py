"""The long-tail baselines: logit-adjusted CE / Balanced Softmax, LDAM, deferred re-weighting and FLSD-53.

Each is checked against its paper's formula (hand-computed cases), against cross-entropy or focal loss where it
reduces to them, for finiteness at extreme logits and under bf16 autocast, and end to end as one override.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, run_cli

from focalbench.config import cell_label, compose
from focalbench.errors import ConfigError
from focalbench.losses import flsd_loss, focal_loss, ldam_loss, ldam_margins, logit_adjusted_loss
from focalbench.registry import LOSSES
from focalbench.training.loop import alpha_start
from focalbench.training.runner import execute_run

CIFAR10_LT_100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def logits_and_target(n=64, c=10, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * scale, torch.randint(0, c, (n,), generator=g)


# ----------------------------------------------------------------------------------------------------------
# Logit adjustment
# ----------------------------------------------------------------------------------------------------------


def test_logit_adjusted_with_tau_0_is_cross_entropy_in_value_and_gradient():
    z, y = logits_and_target()
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    alpha = torch.linspace(0.5, 2.0, 10)
    ours = logit_adjusted_loss(z1, y, CIFAR10_LT_100, tau=0.0, alpha=alpha)
    ref = F.cross_entropy(z2, y, weight=alpha)
    ours.backward(), ref.backward()
    assert torch.allclose(ours, ref, atol=1e-6) and torch.allclose(z1.grad, z2.grad, atol=1e-7)


def test_logit_adjusted_hand_computed():
    # Two classes with counts 3 and 1: pi = (3/4, 1/4). tau = 1, logits (0, 0), target 1:
    # -log( (1/4) e^0 / ((3/4) e^0 + (1/4) e^0) ) = -log(1/4) = log 4.
    loss = logit_adjusted_loss(torch.zeros(1, 2), torch.tensor([1]), [3, 1], tau=1.0)
    assert loss.item() == pytest.approx(math.log(4.0), rel=1e-6)
    # tau = 2, target 0: -log( (9/16) / (9/16 + 1/16) ) = log(10/9).
    loss = logit_adjusted_loss(torch.zeros(1, 2), torch.tensor([0]), [3, 1], tau=2.0)
    assert loss.item() == pytest.approx(math.log(10 / 9), rel=1e-6)


def test_balanced_softmax_preset_is_logit_adjustment_with_tau_1():
    cfg = compose(["loss=balanced_softmax"])
    assert cfg.loss.name == "logit_adjusted" and cfg.loss.tau == 1.0 and cfg.gamma is None
    assert cell_label(cfg) == "logit_adjusted alpha=none tau=1"


# ----------------------------------------------------------------------------------------------------------
# LDAM
# ----------------------------------------------------------------------------------------------------------


def test_ldam_margins_for_cifar10_lt_rho_100():
    # m_c = 0.5 * (n_min / n_c)^(1/4): the rarest class (50) gets 0.5, the largest (5000) 0.5 * 0.01^(1/4).
    expected = [0.5 * (50 / n) ** 0.25 for n in CIFAR10_LT_100]
    margins = ldam_margins(CIFAR10_LT_100, max_margin=0.5)
    assert margins.tolist() == pytest.approx(expected, rel=1e-9)
    assert margins[0].item() == pytest.approx(0.158113883, rel=1e-8) and margins[-1].item() == 0.5


def test_ldam_hand_computed():
    # counts (16, 1): margins (0.5 * (1/16)^(1/4), 0.5) = (0.25, 0.5). Logits (0.2, -0.1), target 0, s = 2:
    # s * (z - m_0 e_0) = (2 * (0.2 - 0.25), 2 * -0.1) = (-0.1, -0.2); CE = log(1 + e^(-0.2 + 0.1)).
    loss = ldam_loss(torch.tensor([[0.2, -0.1]]), torch.tensor([0]), [16, 1], max_margin=0.5, scale=2.0)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-0.1)), rel=1e-6)


def test_ldam_only_moves_the_true_class_logit():
    z, y = logits_and_target()
    margins = ldam_margins(CIFAR10_LT_100, 0.5)
    shifted = z - F.one_hot(y, 10) * margins[y].unsqueeze(1).float()
    expected = F.cross_entropy(30.0 * shifted, y, reduction="none")
    ours = ldam_loss(z, y, CIFAR10_LT_100, reduction="none")
    assert torch.allclose(ours, expected, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# FLSD-53
# ----------------------------------------------------------------------------------------------------------


def test_flsd53_is_focal_gamma_5_below_p_t_02_and_gamma_3_above():
    z, y = logits_and_target(n=256, scale=2.0)
    p_t = F.softmax(z, dim=1).gather(1, y.unsqueeze(1)).squeeze(1)
    low = p_t < 0.2
    assert low.any() and (~low).any()  # both regimes are exercised
    z1 = z.clone().requires_grad_()
    ours = flsd_loss(z1, y, reduction="none")
    ours.sum().backward()
    for gamma, rows in ((5.0, low), (3.0, ~low)):
        zr = z[rows].clone().requires_grad_()
        ref = focal_loss(zr, y[rows], gamma=gamma, reduction="none")
        ref.sum().backward()
        assert torch.allclose(ours[rows], ref, atol=1e-6)
        assert torch.allclose(z1.grad[rows], zr.grad, atol=1e-6)


def test_flsd53_preset():
    cfg = compose(["loss=flsd53"])
    assert (cfg.loss.gamma_low, cfg.loss.gamma_high, cfg.loss.threshold) == (3.0, 5.0, 0.2)


# ----------------------------------------------------------------------------------------------------------
# Shared contract: finite at extreme logits and under bf16, one-line errors
# ----------------------------------------------------------------------------------------------------------

LOSS_CALLS = {
    "logit_adjusted": lambda z, y: logit_adjusted_loss(z, y, CIFAR10_LT_100, tau=1.0),
    "ldam": lambda z, y: ldam_loss(z, y, CIFAR10_LT_100),
    "flsd53": lambda z, y: flsd_loss(z, y),
}


@pytest.mark.parametrize("name", sorted(LOSS_CALLS))
@pytest.mark.parametrize("magnitude", [1e4, -1e4])
def test_finite_for_extreme_logits(name, magnitude):
    z, y = logits_and_target(n=32)
    z = (z.sign() * magnitude).requires_grad_()
    loss = LOSS_CALLS[name](z, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("name", sorted(LOSS_CALLS))
def test_float32_and_finite_under_bf16_autocast(name):
    z, y = logits_and_target(n=32)
    layer = torch.nn.Linear(10, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(z)
        loss = LOSS_CALLS[name](out, y)
    loss.backward()
    assert out.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(layer.weight.grad).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda z, y: logit_adjusted_loss(z, y, CIFAR10_LT_100, tau=-1.0), "tau must be"),
        (lambda z, y: logit_adjusted_loss(z, y, [1, 2, 3]), "class_counts has 3 entries"),
        (lambda z, y: logit_adjusted_loss(z, y, [0] + CIFAR10_LT_100[1:]), "must be finite and > 0"),
        (lambda z, y: ldam_loss(z, y, CIFAR10_LT_100, max_margin=0.0), "max_margin must be"),
        (lambda z, y: ldam_loss(z, y, CIFAR10_LT_100, scale=float("nan")), "scale must be"),
        (lambda z, y: ldam_loss(z, y, CIFAR10_LT_100, alpha=0.3), "binary tasks only"),
        (lambda z, y: flsd_loss(z, y, threshold=1.5), "threshold must be"),
        (lambda z, y: flsd_loss(z, y, gamma_high=-1.0), "gamma must be"),
    ],
)
def test_bad_arguments_raise_one_line_config_errors(call, message):
    z, y = logits_and_target()
    with pytest.raises(ConfigError, match=message) as info:
        call(z, y)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss=ldam", "loss.max_margin=-1"], "loss.max_margin must be"),
        (["loss=logit_adjusted", "loss.tau=-0.5"], "loss.tau must be"),
        (["loss=flsd53", "loss.threshold=2"], "loss.threshold must be"),
        (["loss=ldam", "gamma=2"], "loss=ldam: .* has no gamma"),
        (["loss=ce", "alpha=inverse_freq", "alpha_start_epoch=5", "epochs=3"], "alpha_start_epoch=5"),
        (["loss=ce", "alpha_start_epoch=1.5"], "alpha_start_epoch=1.5"),
        (["loss=ldam", "loss.scale=abc"], "loss.scale must be"),
        (["loss=sigmoid_focal", "loss.prior=0"], r"loss.prior must be a probability in \(0, 1\)"),
        (["loss=sigmoid_focal", "loss.prior=1.5"], r"loss.prior must be a probability in \(0, 1\)"),
        (["loss=sigmoid_focal", "loss.prior=abc"], r"loss.prior must be a probability"),
        (["loss=sigmoid_focal", "gamma=null"], "loss=sigmoid_focal needs gamma"),
        (["loss=sigmoid_focal", "model.norm_classifier=true"], "but model.norm_classifier=true"),
        (
            ["loss=sigmoid_focal", "data=cifar10_lt", "model=cnn"],
            r"but model=cnn \(its classifier has no bias unless model.head_bias=true\)",
        ),
    ],
)
def test_bad_loss_keys_fail_at_plan_time(overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose(overrides)


# ----------------------------------------------------------------------------------------------------------
# Deferred re-weighting
# ----------------------------------------------------------------------------------------------------------


def test_alpha_start_epoch_as_epoch_or_fraction():
    assert alpha_start(compose(["epochs=200", "alpha_start_epoch=160"])) == 160
    assert alpha_start(compose(["epochs=200", "alpha_start_epoch=0.8"])) == 160
    assert alpha_start(compose(["epochs=10", "alpha_start_epoch=0.8"])) == 8
    assert alpha_start(compose([])) == 0
    drw = compose(["loss=ldam_drw", "epochs=200"])
    assert drw.alpha == "effective_num" and alpha_start(drw) == 160 and drw.model.norm_classifier is True


def test_drw_trains_unweighted_until_the_start_epoch(tmp_path):
    """Epochs before the start are bit-identical to the unweighted run; alpha changes training after it."""
    common = [*TINY, "epochs=4", "loss=ce", f"results_dir={tmp_path}"]
    plain = execute_run(compose([*common, "alpha=none"]), quiet=True)
    drw = execute_run(compose([*common, "alpha=inverse_freq", "alpha_start_epoch=2"]), quiet=True)
    assert plain.status == drw.status == "ok"
    rows = [(p / "history.csv").read_text().splitlines() for p in (plain.run_dir, drw.run_dir)]
    loss_col = rows[0][0].split(",").index("train_loss")
    plain_loss = [r.split(",")[loss_col] for r in rows[0][1:]]
    drw_loss = [r.split(",")[loss_col] for r in rows[1][1:]]
    assert plain_loss[:2] == drw_loss[:2] and plain_loss[2:] != drw_loss[2:]
    assert drw.metrics["loss"]["alpha_from_epoch"] == 3  # 1-based: epochs 3 and 4 were weighted
    assert json.loads((drw.run_dir / "metrics.json").read_text())["cell"].endswith("drw@2")


# ----------------------------------------------------------------------------------------------------------
# One loss = one function plus one config file
# ----------------------------------------------------------------------------------------------------------


def test_a_new_loss_needs_only_its_registration_and_a_yaml(tmp_path):
    """A loss registered from outside the package, and its YAML in a user config folder, train end to end."""

    @LOSSES.register("test_squared_margin", summary="toy: mean squared distance to the one-hot target")
    def squared(cfg, class_counts, device):
        weight = float(cfg.loss.weight)
        return lambda z, y, alpha: weight * ((z.float().softmax(1) - F.one_hot(y, z.shape[1])) ** 2).mean()

    try:
        (tmp_path / "cfg" / "loss").mkdir(parents=True)
        (tmp_path / "cfg" / "loss" / "toy.yaml").write_text(
            "# @package _global_\nloss:\n  name: test_squared_margin\n  weight: 2.0\ngamma: null\nalpha: none\n"
        )
        from focalbench.config import searchpath_overrides

        cfg = compose(
            [*searchpath_overrides([str(tmp_path / "cfg")]), *TINY, "loss=toy", f"results_dir={tmp_path}"]
        )
        outcome = execute_run(cfg, quiet=True)
        assert outcome.status == "ok" and outcome.metrics["cell"] == "test_squared_margin alpha=none weight=2"
    finally:
        LOSSES._entries.pop("test_squared_margin", None)


@pytest.mark.slow
def test_every_baseline_runs_end_to_end_in_one_sweep(tmp_path):
    losses = "ce,focal,logit_adjusted,balanced_softmax,ldam,ldam_drw,flsd53"
    out = run_cli("sweep", f"loss={losses}", "seed=0", *TINY, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*/metrics.json")]
    # balanced_softmax is logit_adjusted with tau = 1: the same run, trained once.
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    names = sorted(r["cell"].split()[0] for r in records)
    assert names == ["ce", "flsd53", "focal", "ldam", "ldam", "logit_adjusted"]


# ----------------------------------------------------------------------------------------------------------
# loss.mean: what reduction "mean" divides by
# ----------------------------------------------------------------------------------------------------------


def test_loss_mean_batch_trains_and_its_record_states_its_rule(tmp_path):
    from focalbench.losses import MEAN_CONVENTION, mean_convention

    common = [*TINY, "epochs=2", "loss=balanced_ce", "alpha=effective_num", f"results_dir={tmp_path}"]
    weights = execute_run(compose(common), quiet=True)
    batch = execute_run(compose([*common, "loss.mean=batch"]), quiet=True)
    assert weights.status == batch.status == "ok" and weights.run_id != batch.run_id
    assert weights.metrics["loss"]["mean_convention"] == MEAN_CONVENTION
    assert batch.metrics["loss"]["mean_convention"] == mean_convention("batch")
    assert batch.metrics["cell"] == "ce gamma=0 alpha=effective_num mean=batch"
    first_loss = [float(p.joinpath("history.csv").read_text().splitlines()[1].split(",")[1]) for p in
                  (weights.run_dir, batch.run_dir)]  # fmt: skip
    assert first_loss[0] != first_loss[1]  # the same weights, another denominator


# ----------------------------------------------------------------------------------------------------------
# Multi-class sigmoid focal loss: the prior initialisation of the classifier's bias
# ----------------------------------------------------------------------------------------------------------

PRIOR_BIAS = -math.log(99.0)  # b = -log((1 - pi)/pi) at pi = 0.01


def test_sigmoid_focal_run_trains_from_the_prior_bias(tmp_path, monkeypatch):
    """focalbench run loss=sigmoid_focal epochs=1 on the synthetic default: it trains, and the model it trains
    starts with every class's bias at -log(99)."""
    from focalbench.losses import mean_convention
    from focalbench.models.heads import classifier_layer
    from focalbench.training import loop

    seen = {}
    original = loop.train

    def spy(cfg, data, model, *args, **kwargs):
        seen["bias"] = classifier_layer(model).bias.detach().clone()
        return original(cfg, data, model, *args, **kwargs)

    monkeypatch.setattr(loop, "train", spy)
    outcome = execute_run(compose(["loss=sigmoid_focal", "epochs=1", f"results_dir={tmp_path}"]), quiet=True)
    assert outcome.status == "ok", outcome.error
    assert torch.equal(seen["bias"], torch.full((10,), PRIOR_BIAS))
    assert torch.sigmoid(seen["bias"][0]).item() == pytest.approx(0.01, rel=1e-6)
    assert outcome.metrics["cell"] == "sigmoid_focal gamma=2 alpha=none mean=batch prior=0.01"
    assert outcome.metrics["loss"]["mean_convention"] == mean_convention("batch")
    assert math.isfinite(outcome.metrics["test"]["nll"])


@pytest.mark.parametrize(
    ("model", "input_shape"),
    [("mlp", (8,)), ("linear", (8,)), ("resnet32", (3, 32, 32))],
)
def test_init_classifier_bias_sets_only_the_last_layers_bias(model, input_shape):
    from focalbench.models import build_model, init_classifier_bias
    from focalbench.models.heads import classifier_layer

    torch.manual_seed(0)
    plain = build_model({"name": model}, input_shape, 10)
    torch.manual_seed(0)
    primed = build_model({"name": model}, input_shape, 10)
    init_classifier_bias(primed, PRIOR_BIAS)
    head = classifier_layer(primed)
    assert head.out_features == 10 and torch.equal(head.bias, torch.full((10,), PRIOR_BIAS))
    changed = [
        name
        for (name, a), b in zip(plain.state_dict().items(), primed.state_dict().values(), strict=True)
        if not torch.equal(a, b)
    ]
    assert len(changed) == 1 and changed[0].endswith("bias")  # and nothing drew from the generator


@pytest.mark.parametrize(
    ("model", "input_shape", "norm_classifier"),
    [("cnn", (3, 32, 32), False), ("mlp", (8,), True), ("resnet32", (3, 32, 32), True)],
)
def test_init_classifier_bias_refuses_a_classifier_without_bias(model, input_shape, norm_classifier):
    from focalbench.models import build_model, init_classifier_bias

    net = build_model({"name": model, "norm_classifier": norm_classifier}, input_shape, 10)
    with pytest.raises(ConfigError, match=r"cannot set the classifier bias of .*without a bias") as info:
        init_classifier_bias(net, PRIOR_BIAS)
    assert "\n" not in str(info.value)


def test_other_losses_leave_the_classifier_bias_as_built():
    from focalbench.data import load_data
    from focalbench.models import build_model
    from focalbench.training import runner

    cfg = compose([*TINY, "loss=focal"])
    data = load_data(cfg.data, torch.device("cpu"))
    runner.seed_everything(0)
    setup = runner.prepare_run(cfg, "t", data, torch.device("cpu"), "fp32")
    runner.seed_everything(0)
    built = build_model(cfg.model, data.input_shape, data.n_classes)
    for a, b in zip(setup.model.state_dict().values(), built.state_dict().values(), strict=True):
        assert torch.equal(a, b)
