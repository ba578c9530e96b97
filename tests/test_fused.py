"""Fused groups (focalbench.training.fused) against the unfused runs they replace.

Tolerances. A fused group computes every member's numbers with other kernels (a batched matrix product, a
K-times wider BatchNorm), so sums run in another order and results differ by float rounding, which training
then amplifies. To size that, the same unfused run was repeated with its initial weights nudged by one ulp
(``torch.nextafter``): on the default synthetic grid (12 runs, 30 epochs) that moved the final test
accuracy by up to 0.12 points, NLL by 6e-4, ECE by 0.08 points, the fitted temperature by 2e-3; fused
against unfused gave 0.10 points, 2.6e-3, 0.08 points and 2e-3: the same size. On the small task below
(8 epochs), fused against unfused changes no prediction: accuracies agree exactly, NLL to 1e-4, ECE to 3e-3
points. The tolerances here sit above those figures with a margin: counts of correct predictions may
differ by one test example, continuous metrics by 1e-3 relative (NLL, temperature, losses) or 0.05 points
(ECE). The best-validation epoch is a discontinuous choice between near-tied epochs; when the fused and
unfused runs pick different epochs, their validation scores at those epochs must still agree.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from focalbench.config import compose
from focalbench.data import SplitData, iter_train_batches, load_data
from focalbench.data.batches import iter_member_batches
from focalbench.models import build_model
from focalbench.registry import LOSSES
from focalbench.training import runner
from focalbench.training.fused import GroupCriterion, NotFusable, fuse_models, train_group
from focalbench.training.loop import Diverged, make_optimizer, train
from tests.conftest import TINY, run_cli

SMALL = ["data.n_max=200", "data.test_per_class=50", "epochs=8"]
DEVICE = torch.device("cpu")


def _setups(cfgs, data):
    out = []
    for cfg in cfgs:
        runner.seed_everything(int(cfg.seed))
        out.append(runner.prepare_run(cfg, "test", data, DEVICE, "fp32"))
    return out


def _image_data(n: int = 64, n_classes: int = 10) -> SplitData:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % n_classes
    return SplitData(
        name="fake_images",
        kind="image",
        n_classes=n_classes,
        class_names=[str(c) for c in range(n_classes)],
        train_x=images,
        train_y=labels,
        val_x=images[:16],
        val_y=labels[:16],
        test_x=images[:16],
        test_y=labels[:16],
        train_counts=torch.bincount(labels, minlength=n_classes).tolist(),
        longtail_counts=torch.bincount(labels, minlength=n_classes).tolist(),
        mean=torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1),
        std=torch.tensor([0.25, 0.24, 0.26]).view(1, 3, 1, 1),
        augment=True,
        info={},
    )


# ----------------------------------------------------------------------------------------------------------
# The same inputs: initial parameters and batches
# ----------------------------------------------------------------------------------------------------------


def test_member_batches_are_each_runs_own_batches():
    data = _image_data(n=70)
    seeds = [0, 1, 5]
    fused = list(iter_member_batches(data, 32, [torch.Generator().manual_seed(s) for s in seeds]))
    for k, seed in enumerate(seeds):
        alone = list(iter_train_batches(data, 32, torch.Generator().manual_seed(seed)))
        assert len(alone) == len(fused) == 3  # 32 + 32 + 6: the partial batch too
        for (x, y), (fx, fy) in zip(alone, fused, strict=True):
            assert torch.equal(fx[k], x) and torch.equal(fy[k], y)  # crops, flips, normalisation: bit-equal


def test_initial_parameters_are_each_runs_own():
    cfgs = [compose([f"seed={s}", "gamma=2", *SMALL]) for s in (0, 1, 2)]
    data = load_data(cfgs[0].data, DEVICE)
    fused = fuse_models([s.model for s in _setups(cfgs, data)])
    fused.copy_to_members()  # round trip: stacking and copying back loses nothing
    for cfg, member in zip(cfgs, [s.model for s in _setups(cfgs, data)], strict=True):
        runner.seed_everything(int(cfg.seed))
        alone = build_model(cfg.model, data.input_shape, data.n_classes)
        for (name, a), b in zip(alone.state_dict().items(), member.state_dict().values(), strict=True):
            assert torch.equal(a, b), name
    stacked = fused.net[1].weight  # the first Linear, [K, out, in]
    for k, cfg in enumerate(cfgs):
        runner.seed_everything(int(cfg.seed))
        alone = build_model(cfg.model, data.input_shape, data.n_classes)
        assert torch.equal(stacked[k], alone.net[1].weight)


# ----------------------------------------------------------------------------------------------------------
# One step: every model, fp32, parameters within 1e-5 relative
# ----------------------------------------------------------------------------------------------------------


def _one_step(model_name: str, input_shape, cfg_overrides, losses, device=DEVICE):
    """Three members (their own seeds and losses): one unfused SGD step each, one fused step; the parameters
    and BatchNorm statistics after it, side by side."""
    k = len(losses)
    cfgs = [compose([f"seed={i}", *cfg_overrides, *spec]) for i, spec in enumerate(losses)]
    n_classes = 10
    g = torch.Generator().manual_seed(7)
    x = torch.randn(k, 24, *input_shape, generator=g).to(device)
    y = torch.randint(0, n_classes, (k, 24), generator=g).to(device)
    counts = [50 - 4 * c for c in range(n_classes)]
    models = []
    for cfg in cfgs:
        torch.manual_seed(int(cfg.seed))
        m = build_model(cfg.model, input_shape, n_classes).to(device)
        if len(input_shape) == 3:
            m = m.to(memory_format=torch.channels_last)
        models.append(m)
    alphas = [
        None if cfg.alpha in (None, "none") else torch.linspace(0.5, 2.0, n_classes, device=device)
        for cfg in cfgs
    ]
    # unfused
    alone = []
    for i, (cfg, model) in enumerate(zip(cfgs, models, strict=True)):
        m = _clone(model)
        opt = make_optimizer(cfg, m.parameters())
        criterion = LOSSES.get(str(cfg.loss.name)).build(cfg, counts, device)
        xi = x[i].contiguous(memory_format=torch.channels_last) if len(input_shape) == 3 else x[i]
        criterion(m(xi), y[i], alphas[i]).backward()
        opt.step()
        alone.append(m)
    # fused
    members = [_clone(m) for m in models]
    fused = fuse_models(members, channels_last=len(input_shape) == 3)
    opt = make_optimizer(cfgs[0], fused.parameters())
    criterion = GroupCriterion(cfgs, counts, alphas, device)
    criterion.start_epoch(0)
    criterion(fused(x), y).sum().backward()
    opt.step(keep=torch.ones(k, dtype=torch.bool, device=device))
    fused.copy_to_members()
    for a, b in zip(alone, members, strict=True):
        for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            if ta.is_floating_point():
                torch.testing.assert_close(tb, ta, rtol=1e-5, atol=1e-6, msg=name)
            else:
                assert torch.equal(ta, tb), name


def _clone(model):
    import copy

    return copy.deepcopy(model)


LOSS_MIX = [["loss=focal", "gamma=0"], ["loss=focal", "gamma=2", "alpha=inverse_freq"], ["loss=ce"]]


def test_one_step_mlp():
    _one_step("mlp", (16,), [], [*LOSS_MIX, ["loss=logit_adjusted"], ["loss=flsd53"]])


def test_one_step_mlp_with_every_head_and_norm():
    _one_step("mlp", (16,), ["model.norm=layer"], LOSS_MIX)
    _one_step("mlp", (16,), ["model.norm=none", "model.hidden=[32]"], LOSS_MIX)
    # LDAM's normalised (cosine) head; its criterion has no batched form: each member calls its own
    _one_step("mlp", (16,), [], [["loss=ldam"], ["loss=ldam", "loss.max_margin=0.3"]])


def test_one_step_cnn():
    _one_step("cnn", (3, 32, 32), ["data=cifar10_lt", "model=cnn"], LOSS_MIX)


def test_one_step_resnet32():
    _one_step("resnet32", (3, 32, 32), ["data=cifar10_lt", "model=resnet32"], LOSS_MIX)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@needs_cuda
def test_cuda_one_step_every_model(monkeypatch):
    """The one-step comparison on the GPU, in fp32 (TF32 off: it rounds convolutions and matrix products to
    10 mantissa bits, far above 1e-5)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    cuda = torch.device("cuda")
    _one_step("mlp", (16,), [], [*LOSS_MIX, ["loss=logit_adjusted"]], device=cuda)
    _one_step("cnn", (3, 32, 32), ["data=cifar10_lt", "model=cnn"], LOSS_MIX, device=cuda)
    _one_step("resnet32", (3, 32, 32), ["data=cifar10_lt", "model=resnet32"], LOSS_MIX, device=cuda)


@needs_cuda
def test_cuda_sgd_matches_torch_sgd():
    cuda = torch.device("cuda")
    ours = [
        torch.randn(5, 3, device=cuda, requires_grad=True),
        torch.randn(7, device=cuda, requires_grad=True),
    ]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    from focalbench.training.optim import SGD

    a = SGD(ours, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    b = torch.optim.SGD(theirs, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, foreach=True)
    for step in range(10):
        for opt, params in ((a, ours), (b, theirs)):
            opt.zero_grad()
            sum(((p - step) ** 2).sum() for p in params).backward()
            opt.step()
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-7, atol=1e-7)


@needs_cuda
def test_cuda_bf16_group_trains_like_its_runs(tmp_path):
    """A fused group on the GPU in bf16 autocast (the default there), through execute_group: every member
    writes an ok record, and its training losses follow its unfused run's to bf16 precision."""
    from focalbench.training.fused import execute_group

    cfgs = [compose([f"seed={s}", f"gamma={g}", "device=cuda", "precision=bf16", *SMALL, f"results_dir={tmp_path}"])
            for s, g in ((0, 0), (1, 2), (2, 5))]  # fmt: skip
    outcomes = execute_group(cfgs)
    assert [o.status for o in outcomes] == ["ok"] * 3
    assert all(o.metrics["fused_group"]["size"] == 3 for o in outcomes)
    cuda = torch.device("cuda")
    data = load_data(cfgs[0].data, cuda)
    for cfg, outcome in zip(cfgs, outcomes, strict=True):
        runner.seed_everything(int(cfg.seed))
        s = runner.prepare_run(cfg, "x", data, cuda, "bf16")
        alone = train(cfg, data, s.model, s.alpha, cuda, "bf16", lambda e: None)
        history = [
            float(line.split(",")[1])
            for line in (outcome.run_dir / "history.csv").read_text().splitlines()[1:]
        ]
        assert history[0] == pytest.approx(alone.history[0]["train_loss"], rel=2e-2)
        assert (
            abs(outcome.metrics["test"]["balanced_accuracy"] - alone.final_test["balanced_accuracy"]) <= 5.0
        )


def test_batched_criteria_equal_each_members_own():
    """focal (gamma 0 and > 0 mixed), ce and logit_adjusted: value and gradient of the batched criterion
    against each member's own criterion, with and without alpha."""
    counts = [100, 50, 20, 10, 5]
    specs = {
        "focal": [["gamma=0"], ["gamma=0.5"], ["gamma=2"], ["gamma=5"]],
        "ce": [[], []],
        "logit_adjusted": [["loss.tau=1.0"], ["loss.tau=0.5"]],
    }
    for name, members in specs.items():
        cfgs = [compose([f"loss={name}", *m]) for m in members]
        k = len(cfgs)
        logits = torch.randn(k, 5, 40, dtype=torch.float32) * 3
        target = torch.randint(0, 5, (k, 40))
        for weights in (None, torch.rand(k, 5) + 0.1):
            batched = LOSSES.get(name).meta["batched"](cfgs, counts, DEVICE)
            x = logits.clone().requires_grad_()
            got = batched(x, target, weights)
            got.sum().backward()
            for i, cfg in enumerate(cfgs):
                xi = logits[i].t().contiguous().requires_grad_()
                own = LOSSES.get(name).build(cfg, counts, DEVICE)
                want = own(xi, target[i], None if weights is None else weights[i])
                want.backward()
                torch.testing.assert_close(got[i], want, rtol=1e-6, atol=1e-7)
                torch.testing.assert_close(x.grad[i], xi.grad.t(), rtol=1e-5, atol=1e-7)


def test_a_model_whose_forward_mixes_members_is_not_fused():
    class Mixer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(x).mean(dim=(1, 2, 3), keepdim=True).flatten(1).expand(-1, 10)

    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(NotFusable):
        fuse_models([Mixer(), Mixer()], check_input=x)
    with pytest.raises(NotFusable):
        fuse_models([torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5))] * 2)


# ----------------------------------------------------------------------------------------------------------
# Whole runs
# ----------------------------------------------------------------------------------------------------------


FINAL = ("accuracy", "balanced_accuracy", "macro_f1", "many_shot_acc", "medium_shot_acc", "few_shot_acc")


def _assert_close_runs(fused, alone, n_test: int) -> None:
    one_example = 100.0 / n_test + 1e-9  # accuracies are in percent: one test example
    for key in FINAL:
        a, b = fused.final_test[key], alone.final_test[key]
        if a is None or b is None:
            assert a is b, key
        else:
            assert abs(a - b) <= 10 * one_example if "shot" in key else abs(a - b) <= one_example, key
    assert fused.final_test["nll"] == pytest.approx(alone.final_test["nll"], rel=1e-3)
    assert abs(fused.final_test["ece"] - alone.final_test["ece"]) <= 0.05
    assert fused.calibration["temperature"] == pytest.approx(alone.calibration["temperature"], rel=1e-3)
    assert len(fused.history) == len(alone.history)
    gaps = []
    for a, b in zip(fused.history, alone.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        gaps.append(abs(a["val_balanced_accuracy"] - b["val_balanced_accuracy"]))
        assert gaps[-1] <= 100.0 / 8 + 1e-9  # one val example
    if fused.best_val["epoch"] == alone.best_val["epoch"]:
        assert abs(fused.best_val["test"]["accuracy"] - alone.best_val["test"]["accuracy"]) <= one_example
    else:
        # a flip between near-tied epochs: each best is the maximum of its history's validation scores, so the
        # two differ by no more than the largest gap between the histories' scores, epoch by epoch
        best_gap = abs(fused.best_val["val_balanced_accuracy"] - alone.best_val["val_balanced_accuracy"])
        assert best_gap <= max(gaps) + 1e-9


def test_full_short_run_matches_the_unfused_runs():
    # every loss kind: batched (focal, ce, logit_adjusted), DRW, and one without a batched form (flsd53)
    specs = [["loss=focal", "gamma=0"], ["loss=focal", "gamma=1"], ["loss=focal", "gamma=2"],
             ["loss=focal", "gamma=5"], ["loss=ce", "alpha=inverse_freq"],
             ["loss=balanced_ce", "alpha=effective_num", "alpha_start_epoch=4"], ["loss=logit_adjusted"],
             ["loss=flsd53"]]  # fmt: skip
    cfgs = [compose([f"seed={i % 3}", *spec, *SMALL]) for i, spec in enumerate(specs)]
    data = load_data(cfgs[0].data, DEVICE)
    setups = _setups(cfgs, data)
    results, train_time = train_group(
        cfgs, data, [s.model for s in setups], [s.alpha for s in setups], DEVICE, "fp32", lambda e: None
    )
    assert train_time > 0
    for cfg, fused in zip(cfgs, results, strict=True):
        (alone_setup,) = _setups([cfg], data)
        alone = train(cfg, data, alone_setup.model, alone_setup.alpha, DEVICE, "fp32", lambda e: None)
        _assert_close_runs(fused, alone, n_test=int(data.test_y.numel()))


def test_a_diverging_member_is_recorded_and_frozen_and_the_others_go_on():
    """Member 1 gets absurd class weights from epoch 3 on (deferred re-weighting): its loss overflows there.
    It is recorded as diverged at that step, exactly as its unfused run is; its parameters stay as they were
    before that step; the other members train on and match their unfused runs."""
    huge = "alpha=[" + ",".join(["3e38"] * 10) + "]"
    specs = [["gamma=0"], ["gamma=2", huge, "alpha_start_epoch=2"], ["gamma=5"]]
    cfgs = [compose([f"seed={i}", "loss=focal", *spec, *SMALL]) for i, spec in enumerate(specs)]
    data = load_data(cfgs[0].data, DEVICE)
    setups = _setups(cfgs, data)
    seen = {}

    def progress(event):
        if event["event"] == "group_epoch" and event["epoch"] == 2:  # snapshot member 1 before epoch 3
            seen["before"] = [p.detach().clone() for p in setups[1].model.parameters()]

    results, _ = train_group(
        cfgs, data, [s.model for s in setups], [s.alpha for s in setups], DEVICE, "fp32", progress
    )
    (alone_setup,) = _setups([cfgs[1]], data)
    with pytest.raises(Diverged) as alone:
        train(cfgs[1], data, alone_setup.model, alone_setup.alpha, DEVICE, "fp32", lambda e: None)
    diverged = results[1]
    assert isinstance(diverged, Diverged)
    assert (diverged.epoch, diverged.step) == (alone.value.epoch, alone.value.step) == (3, 1)
    assert diverged.last_finite_loss == pytest.approx(alone.value.last_finite_loss, rel=1e-3)
    assert len(diverged.history) == 2
    for before, after in zip(seen["before"], setups[1].model.parameters(), strict=True):
        assert torch.equal(before, after)  # frozen at the step it diverged
    for k in (0, 2):
        (s,) = _setups([cfgs[k]], data)
        alone_k = train(cfgs[k], data, s.model, s.alpha, DEVICE, "fp32", lambda e: None)
        _assert_close_runs(results[k], alone_k, n_test=int(data.test_y.numel()))


@pytest.mark.slow
def test_image_groups_train_end_to_end():
    """cnn and resnet32 fused on image data with augmentation (a tiny CIFAR-shaped set of random images,
    2 epochs of 3 steps): the first epoch's loss agrees with the unfused runs (later epochs drift apart by
    chaos on random labels, as any rounding difference does), and every member is evaluated."""
    data = _image_data(n=96)
    for model in ("cnn", "resnet32"):
        cfgs = [
            compose(["data=cifar10_lt", f"model={model}", f"seed={s}", f"gamma={g}", "epochs=2", "batch_size=32",
                     "optim.lr=0.02", "eval.batch_size=16"])
            for s, g in ((0, 0), (1, 2))
        ]  # fmt: skip
        setups = _setups(cfgs, data)
        results, _ = train_group(
            cfgs, data, [s.model for s in setups], [s.alpha for s in setups], DEVICE, "fp32", lambda e: None
        )
        for cfg, fused in zip(cfgs, results, strict=True):
            (s,) = _setups([cfg], data)
            alone = train(cfg, data, s.model, s.alpha, DEVICE, "fp32", lambda e: None)
            assert fused.history[0]["train_loss"] == pytest.approx(
                alone.history[0]["train_loss"], rel=1e-4
            ), model
            assert len(fused.history) == 2 and fused.final_test["accuracy"] is not None


# ----------------------------------------------------------------------------------------------------------
# Through the CLI: records, reports, resume, options
# ----------------------------------------------------------------------------------------------------------


def _records(results):
    return {p.parent.name: json.loads(p.read_text()) for p in (results / "runs").glob("*/metrics.json")}


def test_sweep_fuses_by_default_and_writes_the_usual_records(tmp_path):
    results = tmp_path / "results"
    # two runs of the grid done beforehand, unfused: the sweep reuses them and fuses the rest
    for seed in (0, 1):
        assert (
            run_cli(
                "run", "gamma=2", f"seed={seed}", *TINY, f"results_dir={results}", cwd=tmp_path
            ).returncode
            == 0
        )
    out = run_cli(
        "sweep", "gamma=0,2", "seed=0,1,2", *TINY, f"results_dir={results}", "--name", "t", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "2 of 6 runs already done" in out.stdout
    records = _records(results)
    assert len(records) == 6 and all(m["status"] == "ok" for m in records.values())
    groups = [m["fused_group"] for m in records.values() if "fused_group" in m]
    assert (
        len(groups) == 4
        and {g["size"] for g in groups} == {4}
        and sorted(g["index"] for g in groups) == [0, 1, 2, 3]
    )
    for rid, m in records.items():
        folder = results / "runs" / rid
        assert {"config.yaml", "history.csv", "per_class.csv", "train.log", "metrics.json"} <= {
            p.name for p in folder.iterdir()
        }
        assert m["run_id"] == rid
    table = (results / "sweeps" / "t" / "table.md").read_text()
    assert "gamma=0" in table and "gamma=2" in table
    again = run_cli("sweep", "gamma=0,2", "seed=0,1,2", *TINY, f"results_dir={results}", cwd=tmp_path)
    assert again.returncode == 0 and "6 of 6 runs already done" in again.stdout


def test_no_fuse_max_fuse_and_dry_run(tmp_path):
    results = tmp_path / "results"
    grid = ["gamma=0,1,2", "seed=0,1", *TINY, f"results_dir={results}"]
    dry = run_cli("sweep", *grid, "--max-fuse", "4", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "2 fused group(s) of 4, 2 runs" in dry.stdout and not (results / "runs").exists()
    out = run_cli("sweep", *grid, "--no-fuse", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    records = _records(results)
    assert len(records) == 6 and not any("fused_group" in m for m in records.values())
    dropout = run_cli("sweep", "gamma=0,2", "seed=0", *TINY, "model.dropout=0.2", "--dry-run", cwd=tmp_path)
    assert "dropout" in dropout.stdout and "0 fused group(s)" in dropout.stdout


def test_group_plan_policy():
    from focalbench.sweeps.fuse import plan_groups
    from focalbench.sweeps.plan import Cell

    def cells(*overrides):
        return [Cell(list(o), compose(list(o)), f"run{i}") for i, o in enumerate(overrides)]

    vector = cells(
        ["gamma=0", "seed=0"], ["gamma=2", "seed=1"], ["loss=ce", "seed=2"], ["epochs=3", "seed=0"]
    )
    groups = plan_groups(vector)
    assert [len(g.cells) for g in groups] == [3, 1] and groups[0].fused and not groups[1].fused
    assert groups[0].label.startswith("fused x3: ")
    assert [len(g.cells) for g in plan_groups(vector, max_fuse=2)] == [2, 1, 1]
    assert all(not g.fused for g in plan_groups(vector, fuse=False))
    # conv models on a CPU: alone by default (slower fused there), fused when asked
    conv = cells(*[["data=cifar10_lt", "model=cnn", "device=cpu", f"seed={s}"] for s in range(3)])
    assert all(not g.fused and "CPU" in g.reason for g in plan_groups(conv))
    assert [len(g.cells) for g in plan_groups(conv, fuse=True)] == [3]
    fp16 = cells(*[["precision=fp16", f"seed={s}"] for s in range(2)])
    assert all(not g.fused and "fp16" in g.reason for g in plan_groups(fp16, fuse=True))


def test_fusion_key_ignores_only_member_keys():
    from focalbench.sweeps.fuse import fusion_key

    base = fusion_key(compose([]))
    for member in (
        "seed=3",
        "gamma=0",
        "alpha=inverse_freq",
        "loss=ce",
        "alpha_start_epoch=2",
        "results_dir=/x",
    ):
        assert fusion_key(compose([member])) == base, member
    for shaping in ("epochs=3", "batch_size=64", "optim.lr=0.2", "data.data_seed=1", "imbalance=10",
                    "precision=bf16", "threads=2", "model.hidden=[64]", "loss=ldam"):  # fmt: skip
        assert fusion_key(compose([shaping])) != base, shaping


def test_member_bytes_and_default_group_size():
    from focalbench.sweeps.fuse import MAX_FUSE_CAP, default_max_fuse, member_bytes

    small = member_bytes(compose([]))
    assert 0 < small < 50e6
    assert 1 <= default_max_fuse(compose([])) <= MAX_FUSE_CAP
    assert math.isfinite(small)


def test_fused_layers_give_the_members_logits():
    """Evaluation-mode forward of the fused model against each member, every architecture."""
    for name, shape in (("mlp", (16,)), ("cnn", (3, 32, 32)), ("resnet32", (3, 32, 32))):
        models = []
        for seed in range(3):
            torch.manual_seed(seed)
            models.append(build_model({"name": name}, shape, 10).eval())
        x = torch.randn(5, *shape)
        fused = fuse_models(models, check_input=x).eval()
        got = fused(x.unsqueeze(0).expand(3, *x.shape))  # [K, C, N]
        for k, m in enumerate(models):
            torch.testing.assert_close(got[k].t(), m(x), rtol=1e-5, atol=1e-5)
        assert F.softmax(got, dim=1).sum(1).allclose(torch.ones(3, 5))


BATCHED_SPECS = {
    "focal": [["gamma=0"], ["gamma=0.5", "loss.mean=batch"], ["gamma=2"], ["gamma=5", "loss.mean=batch"]],
    "ce": [[], ["loss.mean=batch"]],
    "logit_adjusted": [["loss.tau=1.0", "loss.mean=batch"], ["loss.tau=0.5"]],
    "sigmoid_focal": [["gamma=2"], ["gamma=0.5", "loss.mean=weights"], ["gamma=0"]],
}


@pytest.mark.parametrize("name", sorted(BATCHED_SPECS))
def test_batched_criteria_honour_each_members_loss_mean_and_give_per_example_losses(name):
    """Members with loss.mean=weights and =batch in one batched criterion: each member's [K] entry is its own
    criterion's value and gradient, and reduction="none" gives [K, N] alpha-weighted per-example losses that
    reduce, by each member's rule, to that entry."""
    counts = [100, 50, 20, 10, 5]
    cfgs = [compose([f"loss={name}", *m]) for m in BATCHED_SPECS[name]]
    k = len(cfgs)
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(k, 5, 40, generator=g) * 3
    target = torch.randint(0, 5, (k, 40), generator=g)
    batched = LOSSES.get(name).meta["batched"](cfgs, counts, DEVICE)
    for weights in (None, torch.rand(k, 5, generator=g) + 0.1):
        x = logits.clone().requires_grad_()
        got = batched(x, target, weights)
        got.sum().backward()
        per = batched(logits, target, weights, reduction="none")
        assert per.shape == (k, 40) and per.dtype == torch.float32
        for i, cfg in enumerate(cfgs):
            xi = logits[i].t().contiguous().requires_grad_()
            alpha = None if weights is None else weights[i]
            own = LOSSES.get(name).build(cfg, counts, DEVICE)
            want = own(xi, target[i], alpha)
            want.backward()
            torch.testing.assert_close(got[i], want, rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(x.grad[i], xi.grad.t(), rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(
                per[i], own(xi, target[i], alpha, reduction="none"), rtol=1e-6, atol=1e-7
            )
            batch_rule = cfg.loss.mean == "batch" or weights is None
            denominator = 40 if batch_rule else weights[i][target[i]].sum()
            torch.testing.assert_close(per[i].sum() / denominator, got[i].detach(), rtol=1e-6, atol=1e-7)


def test_group_criterion_gives_every_members_per_example_losses():
    """Batched and unbatched members (flsd53 has no batched form) together: reduction="none" gives [K, N], row
    k equal to member k's own per-example losses; the default call is unchanged."""
    counts = [50 - 4 * c for c in range(10)]
    specs = [
        ["loss=focal", "gamma=2", "loss.mean=batch"],
        ["loss=flsd53"],
        ["loss=ce"],
        ["loss=focal", "gamma=0"],
    ]
    cfgs = [compose(s) for s in specs]
    alphas = [torch.linspace(0.5, 2.0, 10), None, torch.linspace(2.0, 0.5, 10), None]
    criterion = GroupCriterion(cfgs, counts, alphas, DEVICE)
    criterion.start_epoch(0)
    g = torch.Generator().manual_seed(5)
    logits, target = torch.randn(4, 10, 24, generator=g) * 2, torch.randint(0, 10, (4, 24), generator=g)
    means = criterion(logits, target)
    per = criterion(logits, target, reduction="none")
    assert means.shape == (4,) and per.shape == (4, 24)
    for i, cfg in enumerate(cfgs):
        own = LOSSES.get(str(cfg.loss.name)).build(cfg, counts, DEVICE)
        torch.testing.assert_close(per[i], own(logits[i].t(), target[i], alphas[i], reduction="none"))
        torch.testing.assert_close(means[i], own(logits[i].t(), target[i], alphas[i]))


# ----------------------------------------------------------------------------------------------------------
# Multi-class sigmoid focal loss in fused groups
# ----------------------------------------------------------------------------------------------------------

SIGMOID_MIX = [
    ["loss=sigmoid_focal"],
    ["loss=sigmoid_focal", "gamma=0.5", "alpha=inverse_freq", "loss.mean=weights"],
    ["loss=focal", "gamma=2"],
]


def test_one_step_mlp_with_sigmoid_focal_members():
    _one_step("mlp", (20,), [], SIGMOID_MIX)


def test_a_fused_sigmoid_focal_member_starts_from_the_prior_bias():
    """Fused members are built by prepare_run, as their runs are: the stacked head holds each sigmoid focal
    member's prior bias -log(99), and the focal member's own initialisation."""
    cfgs = [compose([f"seed={i}", *spec, *SMALL]) for i, spec in enumerate(SIGMOID_MIX)]
    data = load_data(cfgs[0].data, DEVICE)
    setups = _setups(cfgs, data)
    fused = fuse_models([s.model for s in setups])
    bias = fused.net[-1].bias  # StackedLinear: [K, C, 1]
    assert torch.equal(bias[:2], torch.full((2, 10, 1), -math.log(99.0)))
    assert torch.equal(bias[2, :, 0], setups[2].model.net[-1].bias)
    assert not torch.equal(bias[2], bias[0])


def test_a_sigmoid_focal_group_trains_like_its_runs():
    cfgs = [compose([f"seed={i}", *spec, *SMALL, "epochs=3"]) for i, spec in enumerate(SIGMOID_MIX)]
    data = load_data(cfgs[0].data, DEVICE)
    setups = _setups(cfgs, data)
    results, _ = train_group(
        cfgs, data, [s.model for s in setups], [s.alpha for s in setups], DEVICE, "fp32", lambda e: None
    )
    for cfg, fused in zip(cfgs, results, strict=True):
        (alone_setup,) = _setups([cfg], data)
        alone = train(cfg, data, alone_setup.model, alone_setup.alpha, DEVICE, "fp32", lambda e: None)
        for a, b in zip(fused.history, alone.history, strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert fused.final_test["nll"] == pytest.approx(alone.final_test["nll"], rel=1e-3)
