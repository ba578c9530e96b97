"""The synthetic long-tailed tasks: shapes, seeding, the generative model, and that the losses differ on it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from focalbench.data import describe, load_data, longtail_counts, shot_groups
from focalbench.data.synthetic import HARD_T_RANGE, class_means, flip_labels, sample_class
from focalbench.errors import ConfigError


def synthetic_cfg(**overrides) -> SimpleNamespace:
    """The ``synthetic`` preset as the lead's YAML passes it, with overrides."""
    fields = dict(
        name="synthetic",
        n_classes=10,
        n_features=16,
        n_max=1000,
        imbalance=100.0,
        profile="exp",
        separation=3.0,
        label_noise=0.0,
        hard_fraction=0.2,
        test_per_class=500,
        val_fraction=0.1,
        data_seed=0,
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


def test_shapes_dtypes_and_counts():
    data = load_data(synthetic_cfg(), "cpu")
    assert data.kind == "vector" and data.name == "synthetic" and data.n_classes == 10
    assert data.input_shape == (16,)
    assert data.mean is None and data.std is None and data.augment is False
    for x, y in [(data.train_x, data.train_y), (data.val_x, data.val_y), (data.test_x, data.test_y)]:
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[0] == y.shape[0]
    expected = longtail_counts(1000, 10, 100.0, "exp")
    assert data.longtail_counts == expected
    val_counts = torch.bincount(data.val_y, minlength=10).tolist()
    assert [t + v for t, v in zip(data.train_counts, val_counts, strict=True)] == expected
    assert all(v >= 1 for v in val_counts)
    assert torch.bincount(data.test_y, minlength=10).tolist() == [500] * 10
    assert data.info["n_train"] + data.info["n_val"] == sum(expected)


def test_same_seed_identical_and_independent_of_global_rng():
    torch.manual_seed(1)
    a = load_data(synthetic_cfg(data_seed=3), "cpu")
    torch.manual_seed(12345)  # a different training seed must not change the data
    b = load_data(synthetic_cfg(data_seed=3), "cpu")
    for field in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


def test_different_seed_different_data():
    a = load_data(synthetic_cfg(data_seed=0), "cpu")
    b = load_data(synthetic_cfg(data_seed=1), "cpu")
    assert not torch.allclose(a.train_x[:50], b.train_x[:50])
    assert not torch.allclose(a.test_x[:50], b.test_x[:50])


def test_mapping_config_works_like_attributes():
    cfg = synthetic_cfg(data_seed=2)
    a = load_data(cfg, "cpu")
    b = load_data(vars(cfg), "cpu")
    assert torch.equal(a.train_x, b.train_x)


def test_hard_samples_sit_between_two_class_means():
    gen = torch.Generator().manual_seed(0)
    means = class_means(4, 64, 5.0, gen)
    x = sample_class(means, c=0, n=400, hard_fraction=0.25, generator=gen)
    own = (x - means[0]).norm(dim=1)
    n_hard = 100
    # Easy samples are mean + N(0, I): distance ~ sqrt(F) = 8. Hard ones are moved 0.3..0.45 of the way
    # (1.5..2.25 units along a 7-unit gap) toward another mean, which adds to the distance.
    assert own[n_hard:].mean() < own[:n_hard].mean()
    # Each hard sample is nearer some other class's mean than an easy sample is, on average.
    others = torch.cdist(x, means[1:]).min(dim=1).values
    assert others[:n_hard].mean() < others[n_hard:].mean() - 1.0
    assert HARD_T_RANGE[1] < 0.5  # hard samples stay on their own side of the midpoint


def test_label_noise_flips_exact_fraction_to_other_classes():
    labels = torch.arange(10).repeat(100)
    noisy = flip_labels(labels, 10, 0.2, torch.Generator().manual_seed(0))
    changed = noisy != labels
    assert int(changed.sum()) == 200
    assert noisy.min() >= 0 and noisy.max() <= 9


def test_label_noise_changes_train_labels_but_not_test():
    clean = load_data(synthetic_cfg(), "cpu")
    noisy = load_data(synthetic_cfg(label_noise=0.3), "cpu")
    assert torch.equal(clean.test_y, noisy.test_y) and torch.equal(clean.test_x, noisy.test_x)
    assert noisy.info["design_counts"] == clean.longtail_counts
    # Noise moves head samples into the tail classes, so the tail grows.
    assert noisy.longtail_counts[-1] > clean.longtail_counts[-1]


def test_binary_preset_is_foreground_background():
    data = load_data(synthetic_cfg(n_classes=2, n_max=10000, test_per_class=1000), "cpu")
    assert data.class_names == ["background", "foreground"]
    assert data.longtail_counts == [10000, 100]
    assert describe(data)["achieved_imbalance"] == pytest.approx(100.0)


@pytest.mark.parametrize(
    "override",
    [
        {"n_classes": 1},
        {"imbalance": 0.5},
        {"profile": "linear"},
        {"label_noise": 1.0},
        {"hard_fraction": 1.5},
        {"separation": 0.0},
        {"val_fraction": 1.0},
        {"name": "mnist"},
        {"imbalance": 5000.0},
    ],
)
def test_bad_config_raises_config_error(override):
    with pytest.raises(ConfigError):
        load_data(synthetic_cfg(**override), "cpu")


def test_missing_fields_take_the_defaults_of_the_preset_file():
    """configs/data/synthetic.yaml is the one place of the defaults: a field left out is read from there."""
    full = load_data({"name": "synthetic", "n_max": 200, "test_per_class": 20, "imbalance": 100.0}, "cpu")
    partial = load_data({"name": "synthetic", "n_max": 200, "test_per_class": 20}, "cpu")
    assert full.train_counts == partial.train_counts and torch.equal(full.train_x, partial.train_x)
    assert partial.info["separation"] == 3.0 and partial.info["hard_fraction"] == 0.2


def _per_class_recall(data, weighted: bool) -> torch.Tensor:
    """Full-batch Adam on a linear classifier with (inverse-frequency weighted) cross-entropy: recall in %."""
    torch.manual_seed(0)
    model = torch.nn.Linear(data.input_shape[0], data.n_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    counts = torch.tensor(data.train_counts, dtype=torch.float32)
    weight = (1.0 / counts) * data.n_classes / (1.0 / counts).sum() if weighted else None
    for _ in range(300):
        optimizer.zero_grad()
        F.cross_entropy(model(data.train_x), data.train_y, weight=weight).backward()
        optimizer.step()
    with torch.no_grad():
        pred = model(data.test_x).argmax(dim=1)
    return torch.stack([(pred[data.test_y == c] == c).float().mean() for c in range(data.n_classes)]) * 100


@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_balanced_ce_beats_ce_on_few_shot_classes(data_seed):
    data = load_data({"name": "synthetic", "data_seed": data_seed})  # the `synthetic` preset's defaults
    few = [c for c, g in enumerate(shot_groups(data.train_counts)) if g == "few"]
    assert few, "the preset must have few-shot classes"
    ce = _per_class_recall(data, weighted=False)
    balanced = _per_class_recall(data, weighted=True)
    assert balanced[few].mean() >= ce[few].mean() + 10.0
    assert balanced.mean() > ce.mean()
    assert 30.0 < ce.mean() < 90.0  # neither hopeless nor trivial
