"""The config schema, validation and run identity (no training)."""

from __future__ import annotations

import pytest

from focalbench.config import cell_label, compose, compose_unvalidated
from focalbench.errors import ConfigError
from tests.conftest import run_cli


def test_default_config_is_synthetic_focal_with_no_alpha():
    cfg = compose([])
    assert cfg.data.name == "synthetic" and cfg.data.n_classes == 10 and cfg.data.imbalance == 100
    assert cfg.loss.name == "focal" and cfg.gamma == 2.0 and cfg.alpha == "none"
    assert cfg.model.name == "mlp"


def test_shortcuts_reach_the_groups():
    cfg = compose(["imbalance=10", "gamma=0", "seed=3"])
    assert cfg.data.imbalance == 10 and cfg.gamma == 0 and cfg.seed == 3


def test_loss_presets():
    assert (compose(["loss=ce"]).loss.name, compose(["loss=ce"]).alpha) == ("ce", "none")
    balanced = compose(["loss=balanced_ce"])
    assert balanced.loss.name == "ce" and balanced.gamma == 0 and balanced.alpha == "inverse_freq"
    assert compose(["loss=balanced_ce", "alpha=effective_num"]).alpha == "effective_num"


def test_experiment_preset_overrides_groups():
    cfg = compose(["experiment=ldam_recipe"])
    assert cfg.data.name == "cifar10_lt" and cfg.model.name == "resnet32"
    assert cfg.epochs == 200 and cfg.batch_size == 128 and cfg.data.val_fraction == 0
    assert list(cfg.optim.milestones) == [160, 180] and cfg.optim.weight_decay == 2e-4


def test_cell_label():
    assert cell_label(compose(["gamma=0.5", "alpha=inverse_freq"])) == "focal gamma=0.5 alpha=inverse_freq"
    cfg = compose(["data=synthetic_binary", "alpha=0.25"])
    assert cell_label(cfg) == "focal gamma=2 alpha=0.25"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["gama=2"], "unknown config key 'gama'; did you mean 'gamma'"),
        (["optim.lrr=1"], "did you mean 'optim.lr'"),
        (["data=cifar11"], "unknown data option 'cifar11'.*cifar10_lt"),
        (["model=vgg"], "unknown model option 'vgg'.*resnet32"),
        (["epochs=abc"], "wrong type for 'epochs'"),
        (["gamma=-1"], "gamma must be >= 0"),
        (["alpha=0.3"], "float alpha is for binary tasks only"),
        (["data=synthetic_binary", "alpha=1.5"], r"in \[0, 1\]"),
        (["alpha=[1,2]"], "alpha has 2 weights but the task has 10 classes"),
        (["alpha=[1,2,3,4,5,6,7,8,9,-1]"], "non-negative"),
        (["alpha=inverse"], "alpha=inverse is not valid"),
        (["imbalance=0.5"], "imbalance ratio"),
        (["data.n_classes=1"], "at least 2 classes"),
        (["loss=ce", "gamma=2"], "cross-entropy has no gamma"),
        (["data=cifar10_lt", "data.n_classes=5"], "cifar10_lt has 10 classes"),
        (["precision=fp8"], "precision=fp8 is not valid"),
        (["epochs=0"], "epochs=0 is out of range"),
    ],
)
def test_bad_values_raise_one_line_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        compose(overrides)
    assert "\n" not in str(info.value)


def test_every_config_file_composes_and_validates():
    """Each option of each group, with the defaults of the rest (and an image model for image data)."""
    from focalbench.config import config_dir, validate

    root = config_dir()
    own_data = ("table", "features", "image_folder")  # need a file: validated in tests/test_data_own.py
    for group in ("data", "model", "loss", "optim", "experiment"):
        for option in sorted(p.stem for p in (root / group).glob("*.yaml")):
            extra = ["model=cnn"] if group == "data" and option.startswith("cifar") else []
            if group == "model" and option not in ("mlp", "linear"):
                extra = ["data=cifar10_lt"]
            cfg = compose_unvalidated([f"{group}={option}", *extra])
            if group == "data" and option in own_data:
                with pytest.raises(ConfigError, match="data.path is required"):
                    validate(cfg)
                continue
            validate(cfg)  # raises ConfigError on any bad value


def test_hydra_wording_that_is_still_matched_as_text():
    """Where Hydra gives no structured information, its message text is matched: fail if the wording changes."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from focalbench.config import AMBIGUOUS_SWEEP, config_dir, register_schema

    register_schema()
    with (
        initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"),
        pytest.raises(Exception) as info,
    ):
        hydra_compose(config_name="config", overrides=["gamma=0,1"])
    assert AMBIGUOUS_SWEEP in str(info.value)


def test_defaults_live_in_one_place():
    """Top-level, optim and eval defaults come from the schema; their YAML files repeat none of them."""
    import yaml

    from focalbench.config import EvalConfig, FocalbenchConfig, OptimConfig, config_dir

    schema_keys = set(FocalbenchConfig.__dataclass_fields__) - {"data", "model", "loss", "optim", "eval"}
    top = yaml.safe_load((config_dir() / "config.yaml").read_text())
    assert not (set(top) - {"defaults"}) & schema_keys
    optim = yaml.safe_load((config_dir() / "optim" / "sgd.yaml").read_text())
    assert set(optim) == {"name"} and "name" in OptimConfig.__dataclass_fields__
    assert not (config_dir() / "eval").exists() and EvalConfig().batch_size == 256


def test_loss_mean_is_a_shared_key_with_the_weights_default():
    from focalbench.config import SHARED_LOSS_KEYS

    assert "mean" in SHARED_LOSS_KEYS and "normalize" in SHARED_LOSS_KEYS  # normalize keeps its own meaning
    for preset in ("focal", "ce", "balanced_ce", "balanced_softmax", "ldam_drw", "flsd53", "logit_adjusted"):
        cfg = compose([f"loss={preset}"])
        assert (cfg.loss.mean, cfg.loss.normalize, cfg.loss.beta) == ("weights", "sum_to_C", 0.9999), preset
    assert compose(["loss=balanced_ce", "loss.mean=batch"]).loss.mean == "batch"


def test_a_bad_loss_mean_fails_at_plan_time_in_one_line():
    with pytest.raises(ConfigError, match=r"^loss.mean=avg is not valid; choose one of: weights, batch$"):
        compose(["loss.mean=avg"])


def test_cell_label_shows_the_mean_only_when_it_is_not_the_default():
    assert cell_label(compose(["loss=balanced_ce", "loss.mean=weights"])) == "ce gamma=0 alpha=inverse_freq"
    batch = compose(["loss=balanced_ce", "alpha=effective_num", "loss.mean=batch"])
    assert cell_label(batch) == "ce gamma=0 alpha=effective_num mean=batch"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+gama=5", r"unknown config key 'gama' .*did you mean 'gamma=5'\?"),
        ("+model.widht=3", r"unknown config key 'model.widht'"),
        ("++gama=5", r"unknown config key 'gama'"),
        ("+gamma=5", r"gamma exists already; set it with gamma=5"),
    ],
)
def test_appended_keys_must_be_known(override, message):
    with pytest.raises(ConfigError, match=message):
        compose([override])


def test_appending_a_config_group_and_force_setting_a_known_key_still_work():
    from focalbench.config import check_appended_keys

    assert compose(["++gamma=1"]).gamma == 1
    check_appended_keys(["+hydra/sweeper=optuna", "+hydra.job.chdir=false"])  # extension points: no error


def test_a_typo_in_an_appended_key_writes_nothing(tmp_path):
    for command in (["run", "+gama=5"], ["sweep", "+model.widht=3", "gamma=0,2"]):
        out = run_cli(*command, f"results_dir={tmp_path / 'r'}", cwd=tmp_path)
        assert out.returncode == 2 and "unknown config key" in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "r").exists()
