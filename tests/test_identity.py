"""A run's identity: the run id names the same run, and only the same run (focalbench.identity)."""

from __future__ import annotations

import json

import pytest

from focalbench import identity
from focalbench.config import compose
from focalbench.identity import EXCLUDED_KEYS, RECORD_VERSION, identity_config, run_id
from focalbench.training import record
from focalbench.training.runner import execute_run
from tests.conftest import REPO, TINY


@pytest.fixture
def cpu_machine(monkeypatch):
    """Resolve device=auto as on a machine without CUDA, whatever this one has."""
    monkeypatch.setattr(identity, "cuda_available", lambda: False)


@pytest.fixture
def gpu_machine(monkeypatch):
    monkeypatch.setattr(identity, "cuda_available", lambda: True)


# Pinned ids. An accidental change of a run's identity (a renamed key, a new default, another hash) makes
# every record unreachable, so it must fail here first. If a change alters what a run computes, raise
# RECORD_VERSION (and write the entry in CHANGELOG.md) and update these ids.
GOLDEN = [
    ([], "85794fa47da7"),
    (["loss=ce", "alpha=inverse_freq", "seed=1"], "3951841e5036"),
    (["data=cifar10_lt", "model=cnn", "device=cpu", "precision=fp32"], "d9901e51f98f"),
]


@pytest.mark.parametrize(("overrides", "expected"), GOLDEN, ids=[" ".join(o) or "default" for o, _ in GOLDEN])
def test_golden_run_ids(cpu_machine, overrides, expected):
    assert RECORD_VERSION == 3
    assert run_id(compose(overrides)) == expected


def test_auto_values_are_resolved_before_hashing_on_a_cpu_machine(cpu_machine):
    base = run_id(compose([]))
    assert run_id(compose(["device=cpu"])) == base
    assert run_id(compose(["precision=fp32"])) == base
    assert run_id(compose(["device=cpu", "precision=fp32"])) == base
    assert run_id(compose(["precision=bf16"])) != base
    assert identity_config(compose([]))["device"] == "cpu"
    assert identity_config(compose([]))["precision"] == "fp32"


def test_auto_values_are_resolved_before_hashing_on_a_gpu_machine(gpu_machine):
    auto = run_id(compose([]))
    assert run_id(compose(["device=cuda"])) == auto
    assert run_id(compose(["device=cuda", "precision=bf16"])) == auto
    assert run_id(compose(["device=cpu"])) != auto  # a CPU fp32 record is not reused on the GPU
    assert run_id(compose(["device=cpu", "precision=bf16"])) != auto
    # device=cpu resolves precision=auto to fp32 on any machine
    assert run_id(compose(["device=cpu"])) == run_id(compose(["device=cpu", "precision=fp32"]))


def test_numbers_are_one_value_however_they_are_written(cpu_machine):
    binary = ["data=synthetic_binary"]
    assert run_id(compose([*binary, "alpha=1"])) == run_id(compose([*binary, "alpha=1.0"]))
    assert run_id(compose([*binary, "alpha=0"])) == run_id(compose([*binary, "alpha=0.0"]))
    assert run_id(compose([*binary, "alpha=1"])) != run_id(compose([*binary, "alpha=0.25"]))
    assert run_id(compose(["alpha=[1,2,1,1,1,1,1,1,1,1]"])) == run_id(
        compose(["alpha=[1.0,2.0,1,1,1,1,1,1,1,1.0]"])
    )
    assert run_id(compose(["gamma=2"])) == run_id(compose(["gamma=2.0"]))
    assert identity.normalise({"a": [1.0, 0.5, True], "b": None, "c": 3}) == {"a": [1, 0.5, True], "c": 3}


@pytest.mark.parametrize(
    "loss", ["logit_adjusted", "ldam", "ldam_drw", "balanced_softmax", "ce", "balanced_ce"]
)
def test_gamma_0_of_a_loss_without_gamma_is_the_run_without_it(cpu_machine, loss):
    """A grid ``loss=ce,logit_adjusted gamma=0,2`` runs logit adjustment at gamma=0, which trains exactly as
    ``loss=logit_adjusted``: one id, so neither trains twice. CE's own preset holds gamma=0, so CE's ids (and
    every CE record) are as they were; focal loss at gamma=0 stays its own run."""
    assert run_id(compose([f"loss={loss}", "gamma=0"])) == run_id(compose([f"loss={loss}"]))
    assert run_id(compose(["loss=focal", "gamma=0"])) != run_id(compose(["loss=ce"]))


@pytest.mark.parametrize(
    "override",
    [
        "log_every=7",
        "eval.batch_size=3",
        "results_dir=/elsewhere",
        "jobs=4",
        "threads=2",
        "quiet=true",
        "name=x",
        "suite={description: x}",
    ],
)
def test_keys_that_cannot_change_the_result_do_not_change_the_id(cpu_machine, override):
    assert run_id(compose([override])) == run_id(compose([]))


@pytest.mark.parametrize("override", ["data.root=/x", "data.download=true"])
def test_where_cifar_is_read_from_does_not_change_the_id(cpu_machine, override):
    base = ["data=cifar10_lt", "model=cnn"]  # data.root and data.download are CIFAR keys
    assert run_id(compose([*base, override])) == run_id(compose(base))


@pytest.mark.parametrize(
    "override",
    [
        "gamma=1",
        "seed=1",
        "data.data_seed=1",
        "epochs=5",
        "eval.ece_bins=10",
        "optim.lr=0.05",
        "compile=true",
    ],
)
def test_keys_that_change_the_result_change_the_id(cpu_machine, override):
    assert run_id(compose([override])) != run_id(compose([]))


def test_every_excluded_key_is_a_config_key_with_a_reason():
    import yaml

    cfg = compose(["data=cifar10_lt"])
    presets = [yaml.safe_load(f.read_text()) for f in (REPO / "configs" / "data").glob("*.yaml")]
    data_keys = {k for p in presets for k in p.get("data", p)}  # a "@package _global_" file nests them
    for key, reason in EXCLUDED_KEYS.items():
        assert len(reason) > 10, key
        if key == "hydra":  # Hydra's own node, not part of the composed job config
            continue
        # A key of some data option (data.root of CIFAR, data.max_classes of tables).
        if key.startswith("data."):
            assert key.split(".", 1)[1] in data_keys, f"{key} is not a config key: drop it from EXCLUDED_KEYS"
            continue
        node = cfg
        for part in key.split("."):
            assert part in node, f"{key} is not a config key: drop it from EXCLUDED_KEYS"
            node = node[part]
    assert "threads" in EXCLUDED_KEYS and "device" not in EXCLUDED_KEYS and "precision" not in EXCLUDED_KEYS


def test_the_record_version_is_part_of_the_id(cpu_machine, monkeypatch):
    before = run_id(compose([]))
    monkeypatch.setattr(identity, "RECORD_VERSION", RECORD_VERSION + 1)
    assert run_id(compose([])) != before


def _attempts(run_dir) -> int:
    return sum(line.startswith("attempt: ") for line in (run_dir / "train.log").read_text().splitlines())


def test_metrics_json_holds_the_record_version_and_only_a_matching_record_is_reused(results):
    cfg = compose([*TINY, f"results_dir={results}"])
    first = execute_run(cfg, quiet=True)
    metrics_file = first.run_dir / record.METRICS_FILE
    metrics = json.loads(metrics_file.read_text())
    assert metrics["record_version"] == RECORD_VERSION and metrics["run_id"] == first.run_id
    assert execute_run(cfg, quiet=True).status == "skipped"

    # A record of another version under this id (say, copied from an older checkout) is not reused.
    metrics_file.write_text(json.dumps({**metrics, "record_version": RECORD_VERSION - 1}))
    assert not record.is_done(first.run_dir)
    again = execute_run(cfg, quiet=True)
    assert again.status == "ok" and _attempts(first.run_dir) == 2
    assert json.loads(metrics_file.read_text())["record_version"] == RECORD_VERSION

    # Nor one that names another run, nor one whose status is an error.
    metrics_file.write_text(json.dumps({**metrics, "run_id": "0123456789ab"}))
    assert not record.is_done(first.run_dir)
    metrics_file.write_text(json.dumps({**metrics, "status": "error"}))
    assert not record.is_done(first.run_dir) and record.status(first.run_dir) == "error"
    metrics_file.write_text("{not json")
    assert not record.is_done(first.run_dir)
    assert execute_run(cfg, quiet=True).status == "ok" and _attempts(first.run_dir) == 3


def test_a_diverged_record_is_reused(results):
    cfg = compose([*TINY, f"results_dir={results}", "loss=ce", "optim.lr=1e20"])
    assert execute_run(cfg, quiet=True).status == "diverged"
    again = execute_run(cfg, quiet=True)
    assert again.status == "skipped" and again.metrics["status"] == "diverged"


def test_a_data_file_is_identified_by_its_content_not_its_name(cpu_machine, tmp_path):
    """Your own data: a file changed in place is new data (new runs); the same bytes elsewhere are not."""
    original = REPO / "examples" / "fraud.csv"
    a, moved = tmp_path / "a.csv", tmp_path / "elsewhere" / "b.csv"
    moved.parent.mkdir()
    a.write_bytes(original.read_bytes())
    moved.write_bytes(original.read_bytes())

    def rid(path):
        return run_id(
            compose(
                ["data=table", f"data.path={path}", "data.target=is_fraud", "data.categorical=[merchant]"]
            )
        )

    before = rid(a)
    assert rid(moved) == before
    a.write_bytes(original.read_bytes().replace(b"\n51.92,", b"\n51.93,", 1))
    assert rid(a) != before


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend this CPU has (True) or lacks (False) native bf16; returns the setter."""
    from focalbench import hardware

    def set_native(value: bool) -> None:
        monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: value)

    return set_native


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize(("device", "expected"), [("cuda", "bf16"), ("cuda:1", "bf16"), ("cpu", "fp32")])
def test_auto_precision_is_bf16_on_cuda_and_fp32_on_every_cpu(native_bf16, device, expected, native):
    """Not bf16 on a CPU with native bf16 either: the article_precision suite did not find it equivalent to
    fp32 for focal loss, and one precision for every loss keeps comparisons between losses fair."""
    native_bf16(native)
    assert identity.resolve_precision("auto", device) == expected


@pytest.mark.parametrize("explicit", ["fp32", "bf16", "fp16"])
def test_an_explicit_precision_stands_on_any_cpu(native_bf16, explicit):
    for native in (True, False):
        native_bf16(native)
        assert identity.resolve_precision(explicit, "cpu") == explicit


def test_the_run_id_of_precision_auto_on_the_cpu_is_fp32_on_any_cpu(cpu_machine, native_bf16):
    cnn = ["data=cifar10_lt", "model=cnn", "device=cpu"]
    for native in (True, False):
        native_bf16(native)
        assert run_id(compose(cnn)) == run_id(compose([*cnn, "precision=fp32"])) == "d9901e51f98f"
        assert run_id(compose(cnn)) != run_id(compose([*cnn, "precision=bf16"]))
    assert run_id(compose([])) == run_id(compose(["precision=fp32"]))


def test_loss_mean_at_its_default_keeps_every_existing_id(cpu_machine):
    """loss.mean was added after records existed: at "weights" (what every run computed before) it is left out
    of the id, so the pinned ids above still hold; "batch" computes something else and is another run."""
    assert identity.LATER_KEYS == {
        "loss.mean": "weights",
        "data.drop": [],
        "data.resplit": False,
        "data.flip": True,
    }
    assert run_id(compose(["loss.mean=weights"])) == run_id(compose([])) == GOLDEN[0][1]
    assert run_id(compose(["loss.mean=batch"])) != run_id(compose([]))
    assert "mean" not in identity_config(compose([]))["loss"]


def test_reports_pool_old_records_without_loss_mean_with_new_ones():
    from focalbench.reports.aggregate import semantic_part

    new = {"seed": 0, "loss": {"name": "focal", "beta": 0.9999, "normalize": "sum_to_C", "mean": "weights"}}
    old = {"seed": 1, "loss": {"name": "focal", "beta": 0.9999, "normalize": "sum_to_C"}}
    assert semantic_part(new) == semantic_part(old)
    assert new["loss"]["mean"] == "weights"  # the caller's config is left as it was
    batch = {"seed": 0, "loss": {**old["loss"], "mean": "batch"}}
    assert semantic_part(batch)["loss"]["mean"] == "batch"
