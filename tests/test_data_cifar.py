"""CIFAR-10-LT / CIFAR-100-LT: the long-tail protocol, the restricted unpickler, errors and provenance.

CIFAR-10 tests read the local copy (``FOCALBENCH_TEST_DATA``, else ``<repo>/../shared/data``) and skip
without it. CIFAR-100 tests write small archives in its format into ``tmp_path``.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from focalbench.data import describe, load_data, longtail_counts
from focalbench.data.cifar import SPECS, read_archive
from focalbench.data.safe_pickle import load_pickled_dict
from focalbench.errors import ConfigError, DataError

SHARED_DATA = Path(
    os.environ.get("FOCALBENCH_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
HAVE_CIFAR10 = (SHARED_DATA / "cifar-10-batches-py" / "data_batch_1").is_file()
needs_cifar10 = pytest.mark.skipif(not HAVE_CIFAR10, reason=f"CIFAR-10 copy not found at {SHARED_DATA}")
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_cfg(name="cifar10_lt", **overrides) -> SimpleNamespace:
    fields = dict(
        name=name,
        imbalance=100.0,
        profile="exp",
        val_fraction=0.1,
        data_seed=0,
        root=str(SHARED_DATA),
        download=False,
        augment=True,
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


# --- the long-tail protocol (golden counts) ---------------------------------------------------------


def test_cifar10_rho100_exp_counts():
    expected = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert longtail_counts(5000, 10, 100, "exp") == expected
    assert expected == [int(5000 * 100 ** (-i / 9)) for i in range(10)]
    assert sum(expected) == 12406


def test_cifar10_rho10_and_rho50_exp_counts():
    assert longtail_counts(5000, 10, 10, "exp") == [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]
    assert longtail_counts(5000, 10, 50, "exp") == [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100]


def test_step_profile_counts():
    assert longtail_counts(5000, 10, 100, "step") == [5000] * 5 + [50] * 5
    assert longtail_counts(500, 100, 10, "step") == [500] * 50 + [50] * 50


def test_cifar100_rho100_counts():
    counts = longtail_counts(500, 100, 100, "exp")
    assert len(counts) == 100 and counts[0] == 500 and counts[-1] == 5
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))
    assert sum(counts) == 10847


def test_rho1_is_full_balanced_set():
    assert longtail_counts(5000, 10, 1, "exp") == [5000] * 10
    assert longtail_counts(5000, 10, 1, "step") == [5000] * 10


@pytest.mark.parametrize("args", [(5000, 10, 0.9, "exp"), (5000, 10, 100, "linear"), (5000, 1, 100, "exp")])
def test_bad_protocol_arguments(args):
    with pytest.raises(ConfigError):
        longtail_counts(*args)


# --- the local CIFAR-10 copy ---------------------------------------------------------------------


@needs_cifar10
def test_cifar10_lt_from_shared_copy():
    data = load_data(cifar_cfg(), "cpu")
    assert data.kind == "image" and data.n_classes == 10 and data.class_names == CIFAR10_NAMES
    assert data.input_shape == (3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    assert data.longtail_counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    val_counts = torch.bincount(data.val_y, minlength=10).tolist()
    assert val_counts == [500, 300, 180, 108, 65, 39, 23, 14, 8, 5]  # round(0.1 * n), half up
    assert [t + v for t, v in zip(data.train_counts, val_counts, strict=True)] == data.longtail_counts
    assert torch.bincount(data.test_y, minlength=10).tolist() == [1000] * 10
    assert data.test_y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # official order
    assert data.mean.shape == (1, 3, 1, 1) and data.std.shape == (1, 3, 1, 1)
    # Train and validation images are disjoint.
    train_hashes = {hashlib.md5(row.numpy().tobytes()).digest() for row in data.train_x}
    assert not any(hashlib.md5(row.numpy().tobytes()).digest() in train_hashes for row in data.val_x)


@needs_cifar10
def test_provenance_reports_not_official():
    data = load_data(cifar_cfg(), "cpu")
    files = data.info["files"]
    assert set(files) == {*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"}
    assert files["batches.meta"] == {"md5": "5ff9c542aee3614f3951f8cda6e48888", "official": True}
    assert files["test_batch"]["md5"] == "f5dff0cc629a51ed511197a573f648e0"
    assert not files["data_batch_1"]["official"]
    assert data.info["official_copy"] is False
    assert data.info["root"] == str((SHARED_DATA / "cifar-10-batches-py").resolve())
    summary = describe(data)
    assert summary["official_copy"] is False and summary["achieved_imbalance"] == 100.0
    assert summary["groups"] == {"many": 8, "medium": 2, "few": 0}


@needs_cifar10
def test_data_seed_decides_the_subset():
    a = load_data(cifar_cfg(data_seed=0), "cpu")
    b = load_data(cifar_cfg(data_seed=0), "cpu")
    c = load_data(cifar_cfg(data_seed=1), "cpu")
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    assert a.train_counts == c.train_counts
    assert not torch.equal(a.train_x, c.train_x)


@needs_cifar10
def test_full_balanced_set_without_validation_split():
    data = load_data(cifar_cfg(imbalance=1.0, val_fraction=0.0), "cpu")
    assert data.train_counts == [5000] * 10
    assert data.val_x.shape == (0, 3, 32, 32) and data.val_x.dtype == torch.uint8
    assert data.val_y.shape == (0,) and data.val_y.dtype == torch.int64
    # The README's per-channel statistics of the whole training set.
    assert data.mean.flatten().tolist() == pytest.approx([0.4913, 0.4821, 0.4465], abs=1e-4)
    assert data.std.flatten().tolist() == pytest.approx([0.2452, 0.2428, 0.2606], abs=1e-4)


@needs_cifar10
def test_archive_is_decoded_once_per_process():
    spec = SPECS["cifar10_lt"]
    folder = SHARED_DATA / spec.base_folder
    assert read_archive(spec, folder) is read_archive(spec, folder)


@needs_cifar10
def test_root_from_env_var_and_root_as_archive_folder(monkeypatch):
    monkeypatch.setenv("FOCALBENCH_DATA", str(SHARED_DATA))
    from_env = load_data(cifar_cfg(root=None), "cpu")
    direct = load_data(cifar_cfg(root=str(SHARED_DATA / "cifar-10-batches-py")), "cpu")
    assert torch.equal(from_env.train_y, direct.train_y)


def test_wrong_n_classes_for_dataset():
    with pytest.raises(ConfigError, match="n_classes"):
        load_data(cifar_cfg(n_classes=100), "cpu")


# --- errors ------------------------------------------------------------------------------------


def test_missing_root_says_where_and_how_to_fix(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as excinfo:
        load_data(cifar_cfg(root=str(root)), "cpu")
    message = str(excinfo.value)
    assert str(root) in message and "\n" not in message
    assert "FOCALBENCH_DATA" in message and "data.root" in message and "data.download=true" in message


def test_failed_download_is_a_data_error(tmp_path, monkeypatch):
    import torchvision

    class Offline:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", Offline)
    with pytest.raises(DataError, match="download of CIFAR-100 .* failed .*network unreachable"):
        load_data(cifar_cfg("cifar100_lt", root=str(tmp_path), download=True), "cpu")


class _RunsShell:
    """Pickles to a call of os.system: a stand-in for a tampered archive."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": _RunsShell(marker)}, protocol=2))
    with pytest.raises(DataError, match="refusing to load .*data_batch_1.*system"):
        load_pickled_dict(path)
    assert not marker.exists()


def test_malicious_archive_through_load_data(tmp_path):
    marker = tmp_path / "pwned"
    folder = write_cifar100(tmp_path, per_class_train=[2] * 100)
    (folder / "train").write_bytes(pickle.dumps(_RunsShell(marker), protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        load_data(cifar_cfg("cifar100_lt", root=str(tmp_path)), "cpu")
    assert not marker.exists()


def test_truncated_file_is_a_data_error(tmp_path):
    path = tmp_path / "test_batch"
    payload = {"data": np.zeros((10, 3072), dtype=np.uint8), "labels": list(range(10))}
    path.write_bytes(pickle.dumps(payload, protocol=2)[:5000])
    with pytest.raises(DataError, match="test_batch is truncated or corrupt"):
        load_pickled_dict(path)


def test_non_dict_pickle_is_a_data_error(tmp_path):
    path = tmp_path / "meta"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(DataError, match="expected a dict"):
        load_pickled_dict(path)


# --- CIFAR-100 from small archives in its format -------------------------------------------------


def write_cifar100(
    root: Path, per_class_train: list[int], per_class_test: int = 2, byte_keys: bool = True
) -> Path:
    """Write ``cifar-100-python/{train,test,meta}`` with random pixels; returns the archive folder.

    ``train`` uses Python-2 style bytes keys (as the original), ``test`` str keys, to cover both.
    """
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def split(counts: list[int], keys_as_bytes: bool) -> dict:
        fine = np.repeat(np.arange(100), counts)
        rng.shuffle(fine)
        payload = {
            "data": rng.integers(0, 256, (fine.size, 3072), dtype=np.uint8),
            "fine_labels": fine.tolist(),
            "coarse_labels": (fine // 5).tolist(),
            "filenames": [f"img_{i}.png" for i in range(fine.size)],
        }
        return {k.encode(): v for k, v in payload.items()} if keys_as_bytes else payload

    (folder / "train").write_bytes(pickle.dumps(split(per_class_train, byte_keys), protocol=2))
    (folder / "test").write_bytes(pickle.dumps(split([per_class_test] * 100, False), protocol=2))
    meta = {"fine_label_names": [f"fine_{c}".encode() for c in range(100)], "coarse_label_names": []}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def test_cifar100_lt_from_written_archive(tmp_path):
    needed = longtail_counts(500, 100, 100, "exp")
    write_cifar100(tmp_path, per_class_train=[n + 3 for n in needed])
    data = load_data(cifar_cfg("cifar100_lt", root=str(tmp_path)), "cpu")
    assert data.n_classes == 100 and data.class_names[:2] == ["fine_0", "fine_1"]
    assert data.longtail_counts == needed
    val_counts = torch.bincount(data.val_y, minlength=100).tolist()
    assert all(v >= 1 for v in val_counts)  # even the 5-image classes give one
    assert [t + v for t, v in zip(data.train_counts, val_counts, strict=True)] == needed
    assert torch.bincount(data.test_y, minlength=100).tolist() == [2] * 100
    assert data.train_x.shape == (data.info["n_train"], 3, 32, 32)
    assert set(data.info["files"]) == {"train", "test", "meta"}
    assert data.info["official_copy"] is False


def test_cifar100_pixels_keep_cifar_layout(tmp_path):
    folder = write_cifar100(tmp_path, per_class_train=longtail_counts(500, 100, 100, "exp"), byte_keys=False)
    raw = load_pickled_dict(folder / "test")
    data = load_data(cifar_cfg("cifar100_lt", root=str(tmp_path)), "cpu")
    # Row = R plane, G plane, B plane, each 32x32 row-major: reshape to [3, 32, 32] is NCHW.
    expected = torch.from_numpy(raw["data"][7].reshape(3, 32, 32))
    assert torch.equal(data.test_x[7], expected)
    assert int(data.test_y[7]) == raw["fine_labels"][7]


def test_archive_smaller_than_protocol_is_a_data_error(tmp_path):
    write_cifar100(tmp_path, per_class_train=[10] * 100)
    with pytest.raises(DataError, match="class 0 has 10 samples"):
        load_data(cifar_cfg("cifar100_lt", root=str(tmp_path)), "cpu")


class _Encoded:
    """Pickles (protocol 2) to ``_codecs.encode("x", codec)``."""

    def __init__(self, codec: str):
        self.codec = codec

    def __reduce__(self):
        return (codecs.encode, ("x", self.codec))


def test_codecs_global_admits_only_latin1(tmp_path):
    ok, bad = tmp_path / "ok", tmp_path / "bad"
    ok.write_bytes(pickle.dumps({"data": _Encoded("latin1")}, protocol=2))
    bad.write_bytes(pickle.dumps({"data": _Encoded("rot13")}, protocol=2))
    assert load_pickled_dict(ok) == {"data": b"x"}
    with pytest.raises(DataError, match="codec 'rot13'"):
        load_pickled_dict(bad)
