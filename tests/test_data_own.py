"""Your own data: data=table, data=features, data=image_folder, model=linear, and their bad inputs.

Every file is generated into tmp_path (tiny versions of examples/make_examples.py's data); the image cache is
pointed at tmp_path through FOCALBENCH_CACHE.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from focalbench.cli import main
from focalbench.data import load_data
from focalbench.data.longtail import longtail_counts
from focalbench.errors import ConfigError, DataError
from tests.conftest import REPO, run_cli


def _load_examples():
    spec = importlib.util.spec_from_file_location("make_examples", REPO / "examples" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make = _load_examples()


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """The image cache goes to tmp_path/cache, never to ~/.cache."""
    monkeypatch.setenv("FOCALBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def labelled_frame(counts: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Two numeric features and a string label column with the given class counts, rows shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[name] * n for name, n in counts.items()])
    rng.shuffle(labels)
    return pd.DataFrame(
        {"f1": rng.normal(5.0, 3.0, len(labels)), "f2": rng.integers(0, 100, len(labels)), "label": labels}
    )


def png_bytes(height: int, width: int, seed: int = 0) -> bytes:
    from torchvision.io import encode_png

    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        return bytes(encode_png(image).numpy())


# ----------------------------------------------------------------------------------------------------------
# data=table
# ----------------------------------------------------------------------------------------------------------


def test_table_string_labels_sorted_split_and_standardised(tmp_path):
    counts = {"zebra": 60, "ant": 25, "mole": 10}
    path = write_csv(tmp_path / "t.csv", labelled_frame(counts))
    data = load_data({"name": "table", "path": str(path), "target": "label"})
    assert data.kind == "vector" and data.class_names == ["ant", "mole", "zebra"]  # sorted, names kept
    assert data.input_shape == (2,)
    total = [counts[name] for name in data.class_names]
    per_split = [torch.bincount(y, minlength=3).tolist() for y in (data.train_y, data.val_y, data.test_y)]
    assert [sum(col) for col in zip(*per_split, strict=True)] == total  # every row in exactly one split
    assert per_split[2] == [round(0.2 * n) for n in total]  # stratified test split, test_fraction 0.2
    # standardised with the training split's statistics only
    assert torch.allclose(data.train_x.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(data.train_x.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    info = data.info
    assert info["imbalance"] is None and info["test"].startswith("carved")
    assert info["measured_imbalance"] == pytest.approx(
        max(data.train_counts) / min(data.train_counts), abs=1e-3
    )
    assert info["provenance"] == {
        "path": str(path.resolve()),
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    assert [row["feature"] for row in data.feature_summary] == ["f1", "f2"]
    json.dumps(info)


def test_the_same_data_seed_gives_the_same_splits_and_another_does_not(tmp_path):
    path = write_csv(tmp_path / "t.csv", labelled_frame({"a": 50, "b": 20}))
    cfg = {"name": "table", "path": str(path), "target": "label"}
    one, again, other = load_data(cfg), load_data(cfg), load_data({**cfg, "data_seed": 1})
    assert torch.equal(one.test_x, again.test_x) and torch.equal(one.train_y, again.train_y)
    assert not torch.equal(one.test_x, other.test_x)


def test_parquet_reads_like_csv(tmp_path):
    frame = labelled_frame({"b": 30, "a": 12})
    csv = write_csv(tmp_path / "t.csv", frame)
    frame.to_parquet(tmp_path / "t.parquet")
    from_csv = load_data({"name": "table", "path": str(csv), "target": "label"})
    from_parquet = load_data({"name": "table", "path": str(tmp_path / "t.parquet"), "target": "label"})
    assert from_csv.class_names == from_parquet.class_names == ["a", "b"]
    assert torch.allclose(from_csv.train_x, from_parquet.train_x) and torch.equal(
        from_csv.test_y, from_parquet.test_y
    )


def test_categorical_columns_are_one_hot_and_dropped_columns_are_left_out(tmp_path):
    path = make.make_table(tmp_path / "fraud.csv", n_rows=200, fraud_rate=0.1)
    plain = load_data({"name": "table", "path": str(path), "target": "is_fraud", "drop": ["merchant"]})
    assert plain.input_shape == (4,)  # amount, hour, n_last_24h, card_present (a boolean, 0/1)
    assert plain.info["features"]["ignored"] == ["merchant"] and plain.class_names == ["0", "1"]
    fewer = load_data(
        {"name": "table", "path": str(path), "target": "is_fraud", "drop": ["merchant", "hour"]}
    )
    assert [row["feature"] for row in fewer.feature_summary] == ["amount", "n_last_24h", "card_present"]
    encoded = load_data(
        {"name": "table", "path": str(path), "target": "is_fraud", "categorical": ["merchant"]}
    )
    names = [row["feature"] for row in encoded.feature_summary]
    assert encoded.input_shape == (4 + len(make.MERCHANTS),)
    assert names[:4] == ["amount", "hour", "n_last_24h", "card_present"]
    assert sorted(names[4:]) == sorted(f"merchant={m}" for m in make.MERCHANTS)
    assert encoded.info["features"]["categorical"] == {"merchant": len(make.MERCHANTS)}
    chosen = load_data({"name": "table", "path": str(path), "target": "is_fraud", "features": ["amount"]})
    assert chosen.input_shape == (1,)


def test_a_given_test_file_is_used_as_it_is(tmp_path):
    train = write_csv(tmp_path / "train.csv", labelled_frame({"a": 40, "b": 10}))
    test = write_csv(tmp_path / "test.csv", labelled_frame({"a": 7, "b": 5}, seed=1))
    data = load_data({"name": "table", "path": str(train), "target": "label", "test_path": str(test)})
    assert data.test_y.tolist() == [0 if v == "a" else 1 for v in pd.read_csv(test)["label"]]
    assert data.train_y.numel() + data.val_y.numel() == 50
    assert data.info["test"] == "given" and data.info["test_fraction"] is None
    assert data.info["test_provenance"]["sha256"] == hashlib.sha256(test.read_bytes()).hexdigest()


def test_imbalance_subsamples_the_training_split_to_the_long_tailed_profile(tmp_path):
    path = tmp_path / "e.npz"
    y = np.array(["x"] * 60 + ["y"] * 100 + ["z"] * 80)
    np.savez(path, x=np.random.default_rng(0).normal(size=(len(y), 3)).astype(np.float32), y=y)
    natural = load_data({"name": "features", "path": str(path)})
    pool = natural.info["natural_counts"]  # after the test split: [48, 80, 64]
    assert natural.longtail_counts == pool and natural.info["imbalance"] is None
    rho = load_data({"name": "features", "path": str(path), "imbalance": 10})
    profile = longtail_counts(max(pool), 3, 10.0, "exp")  # by rank: y (largest), z, x
    assert rho.longtail_counts == [profile[2], profile[0], profile[1]]
    assert torch.equal(rho.test_y, natural.test_y)  # the test split is carved before the subsample
    assert rho.info["measured_imbalance"] >= 9


def test_the_imbalance_shortcut_reaches_your_data_and_defaults_to_natural_counts(tmp_path):
    from focalbench.config import compose

    path = make.make_table(tmp_path / "fraud.csv", n_rows=200, fraud_rate=0.2)
    base = ["data=table", f"data.path={path}", "data.target=is_fraud", "data.categorical=[merchant]"]
    assert compose(base).data.imbalance is None and compose(base).imbalance is None
    assert compose([*base, "imbalance=10"]).data.imbalance == 10
    assert compose([]).data.imbalance == 100  # the synthetic task keeps its default


def test_every_own_data_option_composes_and_validates_with_a_file(tmp_path):
    from focalbench.config import compose

    table = make.make_table(tmp_path / "fraud.csv", n_rows=100, fraud_rate=0.2)
    features = make.make_embeddings(tmp_path / "emb.npz", counts=(20, 8), dim=4)
    images = make.make_images(tmp_path / "shapes", counts=(4, 3), size=16)
    for overrides in (
        ["data=table", f"data.path={table}", "data.target=is_fraud", "data.drop=[merchant]"],
        ["data=features", f"data.path={features}", "model=linear"],
        ["data=image_folder", f"data.path={images}", "model=cnn"],
        ["data=image_folder", f"data.path={images}", "model=resnet32"],
    ):
        cfg = compose(overrides)
        assert cfg.data.n_classes is None and cfg.data.imbalance is None


# ----------------------------------------------------------------------------------------------------------
# data=features and model=linear
# ----------------------------------------------------------------------------------------------------------


def test_npz_with_class_names_and_a_test_set(tmp_path):
    path = tmp_path / "e.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x=rng.normal(size=(30, 4)),
        y=np.array([0] * 20 + [1] * 10),
        x_test=rng.normal(size=(6, 4)),
        y_test=np.array([1, 1, 0, 0, 0, 1]),
        class_names=np.array(["spam", "ham"]),
    )
    data = load_data({"name": "features", "path": str(path)})
    assert data.class_names == ["spam", "ham"]  # the file's order, not sorted
    assert data.test_y.tolist() == [1, 1, 0, 0, 0, 1] and data.info["test"] == "given"
    assert data.train_x.dtype == torch.float32


def test_npy_with_a_labels_file_and_a_pt_dict(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    labels = ["cat"] * 25 + ["dog"] * 15
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    from_npy = load_data(
        {"name": "features", "path": str(tmp_path / "x.npy"), "labels_path": str(tmp_path / "labels.txt")}
    )
    torch.save({"x": torch.from_numpy(x), "y": labels}, tmp_path / "e.pt")
    from_pt = load_data({"name": "features", "path": str(tmp_path / "e.pt")})
    assert from_npy.class_names == from_pt.class_names == ["cat", "dog"]
    assert torch.equal(from_npy.train_x, from_pt.train_x) and torch.equal(from_npy.test_y, from_pt.test_y)
    assert from_npy.info["labels_provenance"]["path"] == str((tmp_path / "labels.txt").resolve())


class Payload:
    """A class a malicious pickle could instantiate."""


def test_no_pickle_is_ever_loaded(tmp_path):
    x = np.zeros((4, 2), dtype=np.float32)
    np.savez(tmp_path / "obj.npz", x=x, y=np.array([Payload()] * 4, dtype=object))
    np.save(tmp_path / "obj.npy", np.array([Payload()] * 4, dtype=object))
    np.save(tmp_path / "x.npy", x)
    torch.save({"x": torch.zeros(4, 2), "y": [Payload()] * 4}, tmp_path / "obj.pt")
    cases = [
        (
            {"path": str(tmp_path / "obj.npz")},
            r"obj\.npz: array 'y' holds Python objects.*never loads pickles",
        ),
        ({"path": str(tmp_path / "x.npy"), "labels_path": str(tmp_path / "obj.npy")}, "never loads pickles"),
        ({"path": str(tmp_path / "obj.pt")}, r"obj\.pt: refused.*weights_only=True.*Payload"),
    ]
    for cfg, message in cases:
        with pytest.raises(DataError, match=message) as caught:
            load_data({"name": "features", **cfg})
        assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_a_pickled_npz_is_refused_by_the_cli_with_one_line(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.zeros((4, 2)), y=np.array([Payload()] * 4, dtype=object))
    work = tmp_path / "work"
    work.mkdir()
    out = run_cli("run", "data=features", f"data.path={tmp_path / 'obj.npz'}", cwd=work)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "never loads pickles" in lines[0] and "Traceback" not in out.stderr
    assert list(work.iterdir()) == []


def test_linear_probe():
    from focalbench.models import build_model, count_parameters
    from focalbench.models.heads import NormedLinear

    model = build_model({"name": "linear"}, (8,), 3)
    assert model(torch.zeros(5, 8)).shape == (5, 3) and count_parameters(model) == 8 * 3 + 3
    cosine = build_model({"name": "linear", "norm_classifier": True}, (8,), 3)
    assert isinstance(cosine.head, NormedLinear) and count_parameters(cosine) == 8 * 3


# ----------------------------------------------------------------------------------------------------------
# data=image_folder
# ----------------------------------------------------------------------------------------------------------


def test_image_folder_decodes_resizes_and_caches(tmp_path, monkeypatch, cache_in_tmp):
    from focalbench.data import image_folder

    folder = make.make_images(tmp_path / "shapes", counts=(10, 6, 4), size=20)
    (folder / "square" / "wide.png").write_bytes(png_bytes(24, 48))  # not square: resized, centre-cropped
    (folder / "square" / "notes.txt").write_text("not an image")  # ignored
    cfg = {"name": "image_folder", "path": str(folder)}
    first = load_data(cfg)
    assert first.kind == "image" and first.class_names == ["circle", "square", "triangle"]
    assert first.train_x.dtype == torch.uint8 and first.input_shape == (3, 32, 32)
    assert first.train_y.numel() + first.val_y.numel() + first.test_y.numel() == 21
    assert first.mean.shape == (1, 3, 1, 1) and first.augment
    assert first.info["provenance"]["files"] == 21 and len(first.info["provenance"]["sha256"]) == 64
    cached = list((cache_in_tmp / "image_folder").glob("*.npz"))
    assert len(cached) == 1

    # A new process (in-memory caches cleared) reads the cache file and decodes nothing.
    image_folder._decoded.cache_clear()
    image_folder._read_images_cached.cache_clear()

    def no_decoding(path, size):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(image_folder, "decode_one", no_decoding)
    second = load_data(cfg)
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)

    # A changed file changes the key: the folder is decoded again.
    monkeypatch.undo()
    monkeypatch.setenv("FOCALBENCH_CACHE", str(cache_in_tmp))
    decoded = []
    real = image_folder.decode_one
    monkeypatch.setattr(image_folder, "decode_one", lambda p, s: decoded.append(p) or real(p, s))
    stat = (folder / "circle" / "000.png").stat()
    os.utime(folder / "circle" / "000.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    image_folder._decoded.cache_clear()
    image_folder._read_images_cached.cache_clear()
    load_data(cfg)
    assert len(decoded) == 21 and len(list((cache_in_tmp / "image_folder").glob("*.npz"))) == 2


def test_image_folder_with_a_test_folder(tmp_path):
    train = make.make_images(tmp_path / "train", counts=(8, 4, 3), size=16)
    test = make.make_images(tmp_path / "test", counts=(2, 2, 1), size=16, seed=1)
    data = load_data({"name": "image_folder", "path": str(train), "test_path": str(test), "image_size": 16})
    assert data.input_shape == (3, 16, 16) and data.test_y.tolist() == [0, 0, 1, 1, 2]
    assert data.info["test"] == "given" and data.info["test_provenance"]["files"] == 5


# ----------------------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2, nothing written, no run started
# ----------------------------------------------------------------------------------------------------------


def make_bad_files(d: Path) -> None:
    d.mkdir(parents=True)
    make.make_table(d / "good.csv", n_rows=200, fraud_rate=0.2)
    write_csv(d / "one_class.csv", pd.DataFrame({"f": [1.0, 2.0, 3.0], "y": ["a", "a", "a"]}))
    write_csv(d / "extra_class.csv", pd.DataFrame({"f": [1.0, 2.0], "y": ["a", "zz"]}))
    write_csv(d / "ab.csv", pd.DataFrame({"f": np.arange(20.0), "y": ["a", "b"] * 10}))
    (d / "nan.csv").write_text("a,b,y\n1,2,x\n,3,y\n4,5,x\n6,7,y\n")
    write_csv(
        d / "text.csv", pd.DataFrame({"f": [1.0, 2.0, 3.0, 4.0], "city": list("abab"), "y": [0, 1, 0, 1]})
    )
    (d / "not.parquet").write_text("this is not parquet\n")
    (d / "not.npz").write_text("this is not a zip\n")
    (d / "data.txt").write_text("1,2\n")
    rng = np.random.default_rng(0)
    np.savez(d / "good.npz", x=rng.normal(size=(60, 4)), y=np.array(["a"] * 30 + ["b"] * 20 + ["c"] * 10))
    x_inf = rng.normal(size=(20, 3))
    x_inf[7, 1] = np.inf
    np.savez(d / "inf.npz", x=x_inf, y=np.array([0, 1] * 10))
    np.savez(d / "short.npz", x=rng.normal(size=(10, 3)), y=np.array([0, 1] * 4 + [0]))
    np.savez(d / "pickled.npz", x=rng.normal(size=(4, 3)), y=np.array([Payload()] * 4, dtype=object))
    np.save(d / "x.npy", rng.normal(size=(10, 3)))
    make.make_images(d / "truncated", counts=(3, 3), size=16)
    png = (d / "truncated" / "square" / "001.png").read_bytes()
    (d / "truncated" / "square" / "001.png").write_bytes(png[: len(png) // 2])
    (d / "no_images" / "a").mkdir(parents=True)
    (d / "no_images" / "a" / "readme.txt").write_text("no images here")
    make.make_images(d / "empty_class", counts=(3,), size=16)
    (d / "empty_class" / "square").mkdir()
    make.make_images(d / "images", counts=(3, 3), size=16)


TABLE = ["data=table", "data.target=is_fraud", "data.categorical=[merchant]"]
BAD_OWN_DATA = [
    ("missing file", [*TABLE, "data.path={d}/nope.csv"], r"nope\.csv: no such data file"),
    (
        "missing column",
        ["data=table", "data.path={d}/good.csv", "data.target=label"],
        r"good\.csv: no column 'label'",
    ),
    (
        "missing feature",
        [*TABLE, "data.path={d}/good.csv", "data.features=[amount,nope]"],
        r"no column 'nope'",
    ),
    (
        "one class",
        ["data=table", "data.path={d}/one_class.csv", "data.target=y"],
        r"one_class\.csv.*1 class.*at least 2",
    ),
    (
        "class only in the test set",
        ["data=table", "data.path={d}/ab.csv", "data.target=y", "data.test_path={d}/extra_class.csv"],
        r"ab\.csv: class\(es\) 'zz' have no training example",
    ),
    (
        "NaN feature",
        ["data=table", "data.path={d}/nan.csv", "data.target=y"],
        r"nan\.csv: 1 NaN or infinite.*'a'",
    ),
    ("infinite feature", ["data=features", "data.path={d}/inf.npz"], r"inf\.npz: 1 NaN or infinite.*row 7"),
    (
        "lengths differ",
        ["data=features", "data.path={d}/short.npz"],
        r"short\.npz: x has 10 rows but its labels have 9",
    ),
    (
        "truncated image",
        ["data=image_folder", "data.path={d}/truncated", "model=cnn"],
        r"square/001\.png: cannot decode the image",
    ),
    ("no images", ["data=image_folder", "data.path={d}/no_images", "model=cnn"], r"no_images: no images"),
    (
        "empty class folder",
        ["data=image_folder", "data.path={d}/empty_class"],
        r"class folder\(s\) 'square' hold no",
    ),
    ("not parquet", [*TABLE, "data.path={d}/not.parquet"], r"not\.parquet: not a Parquet file"),
    ("not npz", ["data=features", "data.path={d}/not.npz"], r"not\.npz: not an \.npz file"),
    (
        "features on a table",
        ["data=features", "data.path={d}/good.csv"],
        r"good\.csv: not a supported file; .*; a CSV or Parquet table is read by data=table$",
    ),
    (
        "table on features",
        [*TABLE, "data.path={d}/good.npz"],
        r"not a table file; .*; a file of feature vectors is read by data=features$",
    ),
    ("images from a table", ["data=image_folder", "data.path={d}/good.csv"], r"is read by data=table$"),
    (
        "pickled npz",
        ["data=features", "data.path={d}/pickled.npz"],
        r"pickled\.npz: array 'y'.*never loads pickles",
    ),
    (
        "text feature",
        ["data=table", "data.path={d}/text.csv", "data.target=y", "data.features=[f,city]"],
        r"text\.csv: feature column\(s\) 'city' are not numeric.*data\.categorical",
    ),
    ("no path", ["data=table"], r"data\.path is required"),
    ("no target", ["data=table", "data.path={d}/good.csv"], r"data\.target is required"),
    ("not a table", [*TABLE, "data.path={d}/data.txt"], r"not a table file"),
    ("npy without labels", ["data=features", "data.path={d}/x.npy"], r"data\.labels_path is required"),
    (
        "n_classes",
        [*TABLE, "data.path={d}/good.csv", "data.n_classes=3"],
        r"data\.n_classes=3 but .*good\.csv has 2",
    ),
    (
        "alpha list",
        ["data=features", "data.path={d}/good.npz", "alpha=[1,2]"],
        r"alpha has 2 weights but the task has 3",
    ),
    ("alpha float", ["data=features", "data.path={d}/good.npz", "alpha=0.25"], r"binary tasks only"),
    (
        "imbalance",
        ["data=features", "data.path={d}/good.npz", "imbalance=1.5"],
        r"imbalance=1\.5 needs \d+ examples",
    ),
    (
        "linear on images",
        ["data=image_folder", "data.path={d}/images", "model=linear"],
        r"model=linear takes vector",
    ),
    (
        "image size",
        ["data=image_folder", "data.path={d}/images", "data.image_size=30"],
        r"data\.image_size=30",
    ),
]


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in BAD_OWN_DATA], ids=[c[0] for c in BAD_OWN_DATA])
def test_bad_own_data_gives_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, message):
    d = tmp_path / "data"
    make_bad_files(d)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main(["sweep", *[a.format(d=d) for a in argv], "gamma=0,2", "seed=0", "epochs=2"])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("focalbench: error: "), captured.err
    assert re.search(message, lines[0]), lines[0]
    assert list(work.iterdir()) == [], "bad input must write nothing"
    assert not (tmp_path / "cache").exists(), "nothing decoded is cached from a bad folder"


def test_errors_are_focalbench_errors_in_the_library_too(tmp_path):
    make_bad_files(tmp_path / "d")
    with pytest.raises(DataError):
        load_data({"name": "table", "path": str(tmp_path / "d" / "nan.csv"), "target": "y"})
    with pytest.raises(ConfigError, match="data.test_fraction"):
        load_data(
            {
                "name": "table",
                "path": str(tmp_path / "d" / "good.csv"),
                "target": "is_fraud",
                "test_fraction": 1,
            }
        )


def test_data_info_shows_counts_ratio_splits_and_features(tmp_path, monkeypatch, capsys):
    path = make.make_table(tmp_path / "fraud.csv", n_rows=300, fraud_rate=0.1)
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "data",
            "info",
            "data=table",
            f"data.path={path}",
            "data.target=is_fraud",
            "data.categorical=[merchant]",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for expected in (
        "natural class counts",
        "imbalance ρ = n_max / n_min",
        "groups",
        "n_test",
        "sha256",
        "merchant=online",
    ):
        assert expected in out, expected
    assert "measured_imbalance" not in out and "achieved_imbalance" not in out  # one figure, not two


# ----------------------------------------------------------------------------------------------------------
# End to end: focalbench sweep with 2 gammas and 1 seed on each source
# ----------------------------------------------------------------------------------------------------------


def _table(d: Path) -> tuple[list[str], list[str]]:
    path = make.make_table(d / "fraud.csv", n_rows=300, fraud_rate=0.1)
    return ["data=table", f"data.path={path}", "data.target=is_fraud", "data.categorical=[merchant]"], [
        "0",
        "1",
    ]


def _features(d: Path) -> tuple[list[str], list[str]]:
    path = make.make_embeddings(d / "emb.npz", counts=(60, 20, 8), dim=8)
    return ["data=features", f"data.path={path}", "model=linear"], ["cat", "dog", "fox"]


def _images(d: Path) -> tuple[list[str], list[str]]:
    folder = make.make_images(d / "shapes", counts=(12, 6, 4), size=16)
    overrides = [
        "data=image_folder",
        f"data.path={folder}",
        "model=cnn",
        "model.widths=[8,8,8]",
        "model.stem=8",
    ]
    return overrides, list(make.SHAPES)


@pytest.mark.slow
@pytest.mark.parametrize("source", [_table, _features, _images], ids=["table", "features", "image_folder"])
def test_sweep_end_to_end(tmp_path, source):
    import focalbench.results

    d = tmp_path / "data"
    overrides, class_names = source(d)
    work = tmp_path / "work"
    work.mkdir()
    env = {"FOCALBENCH_CACHE": str(tmp_path / "cache")}
    out = run_cli("sweep", *overrides, "gamma=0,2", "seed=0", "epochs=2", "--name", "own", cwd=work, env=env)
    assert out.returncode == 0, out.stderr
    frame = focalbench.results.load(work / "results" / "sweeps" / "own")
    assert len(frame) == 2 and set(frame["status"]) == {"ok"} and sorted(frame["gamma"]) == [0, 2]
    assert frame["test.balanced_accuracy"].notna().all() and frame["data.sha256"].str.len().eq(64).all()
    for run_dir in frame["run_dir"]:
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        provenance = metrics["data"]["provenance"]
        assert provenance["path"].startswith(str(d)) and len(provenance["sha256"]) == 64
        assert metrics["data"]["measured_imbalance"] > 1 and metrics["data"]["imbalance"] is None
        names = pd.read_csv(Path(run_dir) / "per_class.csv", dtype={"name": str})["name"].tolist()
        assert names == class_names  # class names reach the per-class tables


# ----------------------------------------------------------------------------------------------------------
# Real data, real pitfalls: what a new user's real tables and folders ran into
# ----------------------------------------------------------------------------------------------------------


def refused(capsys, argv: list[str]) -> str:
    """Run the CLI in the current folder; assert it refused with one line and exit 2; return that line."""
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err + captured.out
    assert len(lines) == 1 and lines[0].startswith("focalbench: error: "), captured.err
    return lines[0]


def glass_like(path: Path, seed: int = 0) -> Path:
    """A table like pydataset's glass: float measurements (Na with 2 decimals, mostly distinct) and a Type."""
    rng = np.random.default_rng(seed)
    n = 214
    frame = pd.DataFrame(
        {
            "RI": np.round(rng.normal(1.518, 0.003, n), 5),
            "Na": np.round(rng.normal(13.4, 0.8, n), 2),
            "Mg": np.round(rng.uniform(0, 4.5, n), 2),
            "Type": rng.choice([1, 2, 3, 5, 6, 7], n, p=[0.33, 0.35, 0.08, 0.06, 0.04, 0.14]),
        }
    )
    return write_csv(path, frame)


def test_a_continuous_target_is_refused_with_how_to_allow_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = glass_like(tmp_path / "glass.csv")
    table = ["data=table", f"data.path={path}"]
    line = refused(capsys, ["data", "info", *table, "data.target=Na"])
    assert "'Na' looks continuous" in line and "non-integer numbers" in line and "data.max_classes=" in line
    # An integer column with a value per row (an identifier, or a count) is refused by its number of values.
    ids = write_csv(tmp_path / "ids.csv", pd.DataFrame({"f": np.arange(3000.0), "row": np.arange(3000)}))
    line = refused(capsys, ["data", "info", "data=table", f"data.path={ids}", "data.target=row"])
    assert "3000 distinct values in 3000 rows, more than the cap of 1000;" in line
    # The override: a few fractional values are classes when data.max_classes says how many to expect.
    rng = np.random.default_rng(0)
    grades = write_csv(
        tmp_path / "grades.csv", pd.DataFrame({"f": rng.normal(size=90), "grade": [0.5, 1.5, 2.5] * 30})
    )
    assert "data.max_classes=3" in refused(
        capsys, ["sweep", "data=table", f"data.path={grades}", "data.target=grade"]
    )
    data = load_data({"name": "table", "path": str(grades), "target": "grade", "max_classes": 3})
    assert data.class_names == ["0.5", "1.5", "2.5"]
    with pytest.raises(DataError, match="3 distinct values, more than data.max_classes=2"):
        load_data({"name": "table", "path": str(grades), "target": "grade", "max_classes": 2})
    assert main(["data", "info", *table, "data.target=Type"]) == 0  # the real label column is fine
    # The target is checked first: with a text column too, the continuous target is what is said.
    texts = write_csv(tmp_path / "texts.csv", pd.read_csv(path).assign(kind="x"))
    assert "looks continuous" in refused(
        capsys, ["data", "info", "data=table", f"data.path={texts}", "data.target=Na"]
    )
    assert list(tmp_path.glob("results*")) == []


def test_max_classes_is_not_part_of_the_run_id(tmp_path):
    from focalbench.config import compose
    from focalbench.identity import run_id

    path = write_csv(tmp_path / "t.csv", labelled_frame({"a": 40, "b": 20}))
    base = ["data=table", f"data.path={path}", "data.target=label"]
    assert run_id(compose([*base, "data.max_classes=5"])) == run_id(compose(base))


def test_a_folder_of_train_and_test_splits_is_refused_with_the_paths_to_use(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "digits"
    make.make_images(root / "train", counts=(4, 3), size=16)
    make.make_images(root / "test", counts=(2, 2), size=16, seed=1)
    line = refused(capsys, ["data", "info", "data=image_folder", f"data.path={root}"])
    assert "look like splits, not classes" in line
    assert f"use data.path={root / 'train'} data.test_path={root / 'test'}" in line
    data = load_data({"name": "image_folder", "path": str(root / "train"), "test_path": str(root / "test")})
    assert data.class_names == ["circle", "square"] and data.info["test"] == "given"


def test_a_text_column_is_never_left_out_without_a_word(tmp_path, monkeypatch, capsys):
    from focalbench.config import compose
    from focalbench.identity import run_id

    monkeypatch.chdir(tmp_path)
    path = make.make_table(tmp_path / "fraud.csv", n_rows=200, fraud_rate=0.2)
    base = ["data=table", f"data.path={path}", "data.target=is_fraud"]
    line = refused(capsys, ["sweep", *base, "seed=0"])
    assert "text column(s) 'merchant' are not numeric" in line
    assert "data.categorical=[merchant]" in line and "data.drop=[merchant]" in line
    assert "data.drop lists 'merchant'" in refused(
        capsys, ["run", *base, "data.categorical=[merchant]", "data.drop=[merchant]"]
    )
    assert "no column 'nope'" in refused(capsys, ["run", *base, "data.drop=[merchant,nope]"])
    assert list(tmp_path.glob("results*")) == []
    # data.drop was added after table records existed: at its default it is left out of the run id.
    # (data.resplit=false: this table's 8-example test class re-splits by default, another computation)
    cfg = compose([*base, "data.categorical=[merchant]", "data.resplit=false"])
    from omegaconf import OmegaConf

    before = OmegaConf.to_container(cfg)
    for key in ("drop", "max_classes", "missing_as_category", "resplit"):  # as it was before these keys
        del before["data"][key]
    assert run_id(before) == run_id(cfg)
    assert run_id(compose([*base, "data.drop=[merchant]"])) != run_id(cfg)


def test_every_class_reaches_the_test_split_or_the_data_is_refused(tmp_path, monkeypatch, capsys):
    """A class of one example used to drop out of balanced accuracy: it averaged 3 of 4 classes."""
    monkeypatch.chdir(tmp_path)
    path = write_csv(tmp_path / "t.csv", labelled_frame({"a": 40, "b": 20, "c": 10, "rare": 1}))
    line = refused(capsys, ["sweep", "data=table", f"data.path={path}", "data.target=label", "seed=0"])
    assert "class 'rare' has 1 example: too few to reach both the training and the test split" in line
    two = write_csv(tmp_path / "two.csv", labelled_frame({"a": 40, "b": 20, "c": 10, "rare": 2}))
    data = load_data({"name": "table", "path": str(two), "target": "label"})
    assert sorted(set(data.test_y.tolist())) == [0, 1, 2, 3]  # a class of two reaches both splits
    # A given test set must hold every class too.
    test = write_csv(tmp_path / "test.csv", labelled_frame({"a": 5, "b": 5, "c": 5}, seed=1))
    argv = ["sweep", "data=table", f"data.path={two}", f"data.test_path={test}", "data.target=label"]
    line = refused(capsys, argv)
    assert "class 'rare' (2 in training) has no test example, so balanced accuracy would leave it out" in line
    assert str(test) in line and list(tmp_path.glob("results*")) == []


def test_a_wrong_target_lists_every_column_and_the_closest(tmp_path, monkeypatch, capsys):
    """Glass's label column is 'Type': 'type' used to list 8 columns "... and 2 more", hiding it."""
    monkeypatch.chdir(tmp_path)
    columns = ["RI", "Na", "Mg", "Al", "Si", "K", "Ca", "Ba", "Fe", "Type"]
    frame = pd.DataFrame({c: np.arange(20) % (2 if c == "Type" else 7) for c in columns})
    path = write_csv(tmp_path / "glass.csv", frame)
    line = refused(capsys, ["data", "info", "data=table", f"data.path={path}", "data.target=type"])
    assert "no column 'type' (data.target); its 10 columns are 'RI', 'Na'" in line
    assert line.endswith("'Fe', 'Type'; did you mean 'Type'?")
    line = refused(
        capsys, ["data", "info", "data=table", f"data.path={path}", "data.target=Type", "data.drop=[Ka]"]
    )
    assert "no column 'Ka' (data.features / data.categorical / data.drop); its 10 columns are" in line


def test_a_missing_category_is_shown_by_data_info_and_refused_by_runs_unless_allowed(
    tmp_path, monkeypatch, capsys
):
    """A missing value in a categorical column used to become its own category without a word."""
    from focalbench.config import compose
    from focalbench.identity import run_id

    monkeypatch.chdir(tmp_path)
    frame = pd.read_csv(make.make_table(tmp_path / "full.csv", n_rows=300, fraud_rate=0.2))
    frame.loc[[3, 10, 11], "merchant"] = None
    path = write_csv(tmp_path / "gaps.csv", frame)
    table = ["data=table", f"data.path={path}", "data.target=is_fraud", "data.categorical=[merchant]"]
    line = refused(capsys, ["sweep", *table, "seed=0"])
    assert "categorical column(s) 'merchant' (3 rows) have missing values" in line
    assert "'merchant=<missing>'" in line and line.endswith("data.missing_as_category=true")
    assert main(["data", "info", *table]) == 0
    out = " ".join(capsys.readouterr().out.split())  # as printed, whatever the console's width
    assert "warning: missing values in categorical column(s) 'merchant' 3 rows: runs refuse them" in out
    assert "merchant=<missing>" in out  # the input it would be, in the feature table
    encoded = {"name": "table", "target": "is_fraud", "categorical": ["merchant"]}
    data = load_data({**encoded, "path": str(path), "missing_as_category": True})
    assert "merchant=<missing>" in [row["feature"] for row in data.feature_summary]
    assert data.info["features"]["missing"] == {"merchant": 3}
    # Whether missing values are refused or kept changes no run that trains: not part of the run id.
    full = [
        "data=table",
        f"data.path={tmp_path / 'full.csv'}",
        "data.target=is_fraud",
        "data.categorical=[merchant]",
    ]
    assert run_id(compose([*full, "data.missing_as_category=true"])) == run_id(compose(full))
    assert "missing" not in load_data({**encoded, "path": str(tmp_path / "full.csv")}).info["features"]
    assert list(tmp_path.glob("results*")) == []
