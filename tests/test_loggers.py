"""The ``logger`` config group: runs and sweeps logged to MLflow, TensorBoard and wandb, read back with each
tracker's own reader."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest
from conftest import TINY, run_cli

from focalbench.config import compose
from focalbench.errors import ConfigError
from focalbench.identity import run_id
from focalbench.loggers import RUN_ID_TAG, SWEEP_TAG, chosen
from focalbench.sweeps.plan import plan_sweep

FAST = [*TINY, "threads=1"]


def mlflow_client(results: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("focalbench")
    return client, experiment.experiment_id


def runs_by_record(client, experiment_id) -> dict[str, list]:
    out: dict[str, list] = {}
    for run in client.search_runs([experiment_id], max_results=1000):
        out.setdefault(run.data.tags.get(RUN_ID_TAG, "parent"), []).append(run)
    return out


# ----------------------------------------------------------------------------------------------------------
# The config group
# ----------------------------------------------------------------------------------------------------------


def test_logger_group_choices_and_lists_leave_the_run_id_alone():
    default = compose(FAST)
    assert chosen(default) == {}
    both = compose([*FAST, "logger=[mlflow,tensorboard]", "logger.mlflow.tracking_uri=http://mlflow:5000"])
    assert set(chosen(both)) == {"mlflow", "tensorboard"}
    assert chosen(both)["mlflow"]["tracking_uri"] == "http://mlflow:5000"
    assert chosen(compose([*FAST, "logger=wandb"]))["wandb"]["mode"] == "offline"
    # where a run is logged does not change what it computes: one run id, one record
    assert run_id(both) == run_id(default) == run_id(compose([*FAST, "logger=wandb"]))


def test_sweep_planner_takes_a_logger_list_as_one_value(tmp_path):
    plan = plan_sweep(
        [*FAST, "gamma=0,2", "seed=0", "logger=[mlflow,tensorboard]", f"results_dir={tmp_path}"]
    )
    assert len(plan.cells) == 2  # the list is the value of one key, not a sweep over loggers
    assert all(set(chosen(c.cfg)) == {"mlflow", "tensorboard"} for c in plan.cells)
    plain = plan_sweep([*FAST, "gamma=0,2", "seed=0", f"results_dir={tmp_path}"])
    assert plan.name == plain.name  # the logger does not name another sweep folder
    assert [c.run_id for c in plan.cells] == [c.run_id for c in plain.cells]


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "logger=mlfow",
            "unknown logger option 'mlfow' (did you mean logger=mlflow?); choose one of: mlflow, "
            "none, tensorboard, wandb",
        ),
        (
            "logger=[mlflow,tensorbord]",
            "unknown logger option 'tensorbord' (did you mean logger=tensorboard?)",
        ),
        ("logger.mlflow.tracking_uri=x", "it is a key of logger=mlflow; add logger=mlflow"),
        (  # the password would be written into every run's config.yaml
            "logger=mlflow logger.mlflow.tracking_uri=https://me:s3cret@mlflow.example.org",
            "logger.mlflow.tracking_uri holds credentials (user:password@host)",
        ),
    ],
)
def test_a_bad_logger_is_one_line_and_exit_2(tmp_path, override, expected):
    proc = run_cli("run", *FAST, *override.split(), f"results_dir={tmp_path / 'r'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "r").exists()


def test_a_tracker_that_is_not_installed_is_refused_before_anything_runs(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"^logger=wandb: the wandb package is not installed; pip install"):
        compose([*FAST, "logger=[tensorboard,wandb]"])
    compose([*FAST, "logger=tensorboard"])  # the others are still there
    # an address without credentials (a port, a path with @) is fine
    compose([*FAST, "logger=mlflow", "logger.mlflow.tracking_uri=http://mlflow.example.org:5000/a@b"])


def test_a_bad_wandb_mode_is_refused():
    with pytest.raises(
        ConfigError, match=r"^logger.wandb.mode=offlne is not valid; choose one of: offline, "
    ):
        compose([*FAST, "logger=wandb", "logger.wandb.mode=offlne"])


# ----------------------------------------------------------------------------------------------------------
# MLflow and TensorBoard, read back
# ----------------------------------------------------------------------------------------------------------


def test_sweep_logs_fused_members_as_runs_and_the_report_as_their_parent(tmp_path, results):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = (
        "sweep",
        *FAST,
        "gamma=0,2",
        "seed=0",
        "--fuse",
        "logger=[mlflow,tensorboard]",
        f"results_dir={results}",
    )
    proc = run_cli(*args, "--name", "g", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    rdirs = sorted((results / "runs").iterdir())
    assert len(rdirs) == 2
    records = {d.name: json.loads((d / "metrics.json").read_text()) for d in rdirs}
    assert all(m["fused_group"]["size"] == 2 for m in records.values())  # trained as one fused group

    client, experiment = mlflow_client(results)
    by_record = runs_by_record(client, experiment)
    assert set(by_record) == {*records, "parent"}
    (parent,) = by_record["parent"]
    assert parent.data.tags[SWEEP_TAG] == str(results / "sweeps" / "g")
    assert "report/table.md" in [a.path for a in client.list_artifacts(parent.info.run_id, "report")]
    for rid, metrics in records.items():
        (run,) = by_record[rid]  # each fused member is its own MLflow run
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["focalbench.record"] == str(results / "runs" / rid)
        assert float(run.data.params["gamma"]) == metrics["loss"]["gamma"]
        assert run.data.params["optim.lr"] == "0.1"
        assert "logger.mlflow.tracking_uri" not in run.data.params
        history = client.get_metric_history(run.info.run_id, "train_loss")
        assert [m.step for m in history] == [1, 2, 3]
        assert run.data.metrics["test.balanced_accuracy"] == pytest.approx(
            metrics["test"]["balanced_accuracy"]
        )
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "record")]
        assert {"record/metrics.json", "record/history.csv", "record/config.yaml"} <= set(artifacts)
        assert "record/lock.json" not in artifacts
        logged = Path(client.download_artifacts(run.info.run_id, "record/metrics.json", str(tmp_path / rid)))
        assert json.loads(logged.read_text()) == metrics

        events = EventAccumulator(str(results / "tensorboard" / rid))
        events.Reload()
        assert [e.step for e in events.Scalars("val_balanced_accuracy")] == [1, 2, 3]
        (final,) = events.Scalars("test.balanced_accuracy")
        assert final.value == pytest.approx(metrics["test"]["balanced_accuracy"], rel=1e-6)
        assert "config/text_summary" in events.Tags()["tensors"]
    report = EventAccumulator(str(results / "tensorboard" / "sweeps" / "g"))
    report.Reload()
    assert "sweep/report/text_summary" in report.Tags()["tensors"]

    # The same sweep again: its runs are reused and not logged twice; its report goes to the same parent run.
    again = run_cli(*args, "--name", "g", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert {k: len(v) for k, v in runs_by_record(client, experiment).items()} == {
        k: len(v) for k, v in by_record.items()
    }


def test_a_reused_record_is_logged_once_when_a_logger_is_turned_on(tmp_path, results):
    plain = run_cli("run", *FAST, f"results_dir={results}", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert not (results / "mlflow.db").exists() and not (results / "tensorboard").exists()
    for _ in range(2):
        proc = run_cli("run", *FAST, "logger=mlflow", f"results_dir={results}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "logged to mlflow: sqlite:///" in proc.stdout  # where `mlflow ui` finds it
    client, experiment = mlflow_client(results)
    (rid,) = [d.name for d in (results / "runs").iterdir()]
    assert [len(v) for v in runs_by_record(client, experiment).values()] == [1]
    assert list(runs_by_record(client, experiment)) == [rid]


def test_an_unreachable_tracker_is_one_warning_and_the_run_is_recorded(tmp_path, results):
    with socket.socket() as s:  # a port with nothing listening: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_cli(
        "run",
        *FAST,
        "logger=[mlflow,tensorboard]",
        f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}",
        f"results_dir={results}",
        cwd=tmp_path,
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"},
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "logger mlflow failed" in warnings[0], proc.stderr
    assert "Traceback" not in proc.stderr
    (rdir,) = (results / "runs").iterdir()
    assert json.loads((rdir / "metrics.json").read_text())["status"] == "ok"
    assert any(
        (results / "tensorboard" / rdir.name).glob("events.out.tfevents.*")
    )  # the other tracker logged


# ----------------------------------------------------------------------------------------------------------
# wandb, offline
# ----------------------------------------------------------------------------------------------------------


def wandb_records(path: Path):
    """The records of a wandb run file (``run-<id>.wandb``): a LevelDB-style log of protobuf ``Record``s after
    a 7-byte header (":W&B", magic, version), in 32 KiB blocks of chunks (crc32, length, type)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunk = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


def test_wandb_offline_run_folder_holds_the_history_and_final_metrics(tmp_path, results):
    proc = run_cli("run", *FAST, "logger=wandb", f"results_dir={results}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # silenced: none of wandb's own "wandb: ..." lines, only the run's output
    assert not [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("wandb:")]
    assert "logged to wandb: " in proc.stdout
    (rdir,) = (results / "runs").iterdir()
    metrics = json.loads((rdir / "metrics.json").read_text())
    (folder,) = (results / "wandb").glob(f"offline-run-*-{rdir.name}-*")
    (run_file,) = folder.glob("run-*.wandb")
    history, summary = {}, {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = history.setdefault(record.history.step.num, {})
            row.update(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            )
        elif kind == "summary":
            summary.update({i.key: json.loads(i.value_json) for i in record.summary.update})
    assert sorted(history) == [1, 2, 3]
    assert [history[s]["train_loss"] for s in (1, 2, 3)] == pytest.approx(
        [float(r.split(",")[1]) for r in (rdir / "history.csv").read_text().splitlines()[1:]]
    )
    assert summary["test.balanced_accuracy"] == pytest.approx(metrics["test"]["balanced_accuracy"])
    assert summary[RUN_ID_TAG] == rdir.name


def test_reproduce_logs_its_runs_and_its_report(tmp_path):
    """``focalbench reproduce <suite> logger=...`` logs like a sweep: every run, then the suite's report."""
    from rich.console import Console
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from focalbench.sweeps.reproduce import reproduce

    console = Console(record=True, width=200)
    overrides = [f"results_dir={tmp_path}", "epochs=2", "threads=1", "logger=tensorboard"]
    reproduce("ci", overrides, console=console, show_progress=False)  # 2 epochs: the claims may not hold
    run_ids = json.loads((tmp_path / "sweeps" / "ci" / "sweep.json").read_text())["run_ids"]
    assert len(run_ids) == 25
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir() if p.name != "sweeps") == sorted(
        run_ids
    )
    report = EventAccumulator(str(tmp_path / "tensorboard" / "sweeps" / "ci"))
    report.Reload()
    assert {"sweep/report/text_summary", "sweep/runs/text_summary"} <= set(report.Tags()["tensors"])
