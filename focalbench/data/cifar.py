"""CIFAR-10-LT and CIFAR-100-LT, read from the python-format archives and kept on the device.

Where the archives are looked for (``root``): the ``root`` argument (``data.root``), else the environment
variable ``FOCALBENCH_DATA``, else ``~/.cache/focalbench/data``. The folder must hold
``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``, ``batches.meta``) or ``cifar-100-python/``
(``train``, ``test``, ``meta``; fine labels). A root that *is* that folder is accepted too.

Reading: each file goes through the restricted unpickler of :mod:`focalbench.data.safe_pickle` (numpy
only, no per-image PIL work). The decoded arrays are cached in-process, keyed by folder and the files'
sizes and modification times, so a sweep of many runs in one process reads them once.

Provenance: the md5 of every archive file is compared with torchvision's official list
(``torchvision.datasets.CIFAR10.train_list`` / ``test_list`` / ``meta``, same for ``CIFAR100``) and
recorded in ``info["files"]``; ``info["official_copy"]`` is True only when all match. md5s are cached
per ``(path, size, mtime)``.

Long-tailed protocol (:mod:`focalbench.data.longtail`): class i keeps ``n_i`` training images
(``n_max`` = 5000 for CIFAR-10, 500 for CIFAR-100), a random subset drawn with the data seed; a
stratified validation split is carved from them; the test set is the full official 10,000 images.

Normalisation: per-channel mean and std of the *training split* (pixel/255 units), computed exactly from
per-channel pixel histograms. They differ from the usual CIFAR constants because the long tail changes
the class mix; ``info["normalization"]`` states this.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from focalbench.config import typed_field
from focalbench.data.longtail import (
    class_counts,
    longtail_counts,
    select_longtail,
    stratified_split,
)
from focalbench.data.safe_pickle import load_pickled_dict
from focalbench.data.seeding import child_generator
from focalbench.data.split import SplitData
from focalbench.errors import ConfigError, DataError
from focalbench.registry import DATASETS

DATA_ENV_VAR = "FOCALBENCH_DATA"
DEFAULT_ROOT = Path("~/.cache/focalbench/data")
IMAGE_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant lives in its archive and how the long-tailed protocol sizes it."""

    name: str  # focalbench dataset name
    title: str  # human name, for messages
    torchvision_class: str  # class in torchvision.datasets (official md5s, download)
    base_folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    n_classes: int
    n_max: int

    @property
    def all_files(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)


SPECS: dict[str, CifarSpec] = {
    "cifar10_lt": CifarSpec(
        name="cifar10_lt",
        title="CIFAR-10",
        torchvision_class="CIFAR10",
        base_folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
        n_classes=10,
        n_max=5000,
    ),
    "cifar100_lt": CifarSpec(
        name="cifar100_lt",
        title="CIFAR-100",
        torchvision_class="CIFAR100",
        base_folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        n_classes=100,
        n_max=500,
    ),
}


def resolve_root(root: str | os.PathLike | None) -> Path:
    """``root`` if given, else ``$FOCALBENCH_DATA``, else ``~/.cache/focalbench/data`` (user-expanded)."""
    if root is None or str(root) == "":
        root = os.environ.get(DATA_ENV_VAR) or DEFAULT_ROOT
    return Path(root).expanduser()


def archive_folder(spec: CifarSpec, root: Path) -> Path:
    """The folder holding the archive files: ``root/<base_folder>``, or ``root`` itself if it is that folder."""
    if root.name == spec.base_folder:
        return root
    return root / spec.base_folder


def missing_files(spec: CifarSpec, folder: Path) -> list[str]:
    """Names of the archive files absent from ``folder``."""
    return [name for name in spec.all_files if not (folder / name).is_file()]


def _not_found_message(spec: CifarSpec, root: Path, missing: list[str]) -> str:
    return (
        f"{spec.title} not found: {root / spec.base_folder} lacks {', '.join(missing)}. "
        f"Fix: set {DATA_ENV_VAR}=<folder holding {spec.base_folder}/>, pass data.root=<that folder>, "
        f"or pass data.download=true"
    )


def require_archives(name: str, root: str | os.PathLike | None) -> Path:
    """The archive folder of dataset ``name`` under ``root``; DataError in one line when files are missing.

    Used before a run or sweep starts, so that a missing dataset stops it with nothing written.
    """
    spec = SPECS[name]
    root_path = resolve_root(root)
    folder = archive_folder(spec, root_path)
    missing = missing_files(spec, folder)
    if missing:
        raise DataError(_not_found_message(spec, root_path, missing))
    return folder


def download_archives(spec: CifarSpec, root: Path) -> None:
    """Fetch and extract the official archive into ``root`` with torchvision (which verifies its md5).

    Raises:
        DataError: any failure (no network, read-only folder, checksum mismatch), in one line.
    """
    import torchvision

    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    try:
        root.mkdir(parents=True, exist_ok=True)
        dataset_class(str(root), train=True, download=True)
    except Exception as exc:  # any failure (network, disk, checksum) becomes one line
        raise DataError(
            f"download of {spec.title} into {root} failed ({type(exc).__name__}: {exc}); "
            f"download it by hand and set {DATA_ENV_VAR} or data.root to the folder holding {spec.base_folder}/"
        ) from exc


def official_md5s(spec: CifarSpec) -> dict[str, str]:
    """torchvision's md5 of every original archive file, by file name."""
    import torchvision

    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    md5s = {name: md5 for name, md5 in (*dataset_class.train_list, *dataset_class.test_list)}
    md5s[dataset_class.meta["filename"]] = dataset_class.meta["md5"]
    return md5s


def _file_signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _md5_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    """md5 hex digest of a file, cached in-process per ``(path, size, mtime)``."""
    return _md5_cached(str(path), *_file_signature(path))


def provenance(spec: CifarSpec, folder: Path) -> tuple[dict[str, dict], bool]:
    """``({file: {"md5", "official"}}, all_official)`` for the archive files in ``folder``."""
    official = official_md5s(spec)
    files = {}
    for name in spec.all_files:
        md5 = file_md5(folder / name)
        files[name] = {"md5": md5, "official": md5 == official.get(name)}
    return files, all(entry["official"] for entry in files.values())


@dataclass(frozen=True)
class CifarArrays:
    """Decoded archive, on the CPU, read-only (shared by every run through the cache)."""

    train_x: np.ndarray  # uint8 [50000, 3, 32, 32]
    train_y: np.ndarray  # int64 [50000]
    test_x: np.ndarray  # uint8 [10000, 3, 32, 32]
    test_y: np.ndarray  # int64 [10000]
    class_names: tuple[str, ...]


def _decode_name(name: bytes | str) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def _read_batches(spec: CifarSpec, folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``data`` and labels of the given files into uint8 ``[N,3,32,32]`` and int64 ``[N]``."""
    xs, ys = [], []
    for name in names:
        path = folder / name
        batch = load_pickled_dict(path)
        if "data" not in batch or spec.label_key not in batch:
            raise DataError(
                f"{path} lacks the keys 'data' and '{spec.label_key}' (not a {spec.title} archive)"
            )
        data = np.asarray(batch["data"])
        labels = np.asarray(batch[spec.label_key], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise DataError(
                f"{path} holds data {data.dtype} {list(data.shape)} with {len(labels)} labels; "
                f"expected uint8 [n, 3072] with n labels"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= spec.n_classes):
            raise DataError(f"{path} has labels outside 0..{spec.n_classes - 1}")
        xs.append(data)
        ys.append(labels)
    # Each row is the R plane, then G, then B, each 32x32 row-major: exactly NCHW after a reshape.
    x = np.concatenate(xs).reshape(-1, *IMAGE_SHAPE)
    y = np.concatenate(ys)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


@functools.lru_cache(maxsize=4)
def _read_archive_cached(spec_name: str, folder: str, signature: tuple) -> CifarArrays:
    spec = SPECS[spec_name]
    path = Path(folder)
    meta_path = path / spec.meta_file
    meta = load_pickled_dict(meta_path)
    if spec.names_key not in meta or len(meta[spec.names_key]) != spec.n_classes:
        raise DataError(f"{meta_path} lacks {spec.n_classes} class names under '{spec.names_key}'")
    train_x, train_y = _read_batches(spec, path, spec.train_files)
    test_x, test_y = _read_batches(spec, path, spec.test_files)
    names = tuple(_decode_name(n) for n in meta[spec.names_key])
    return CifarArrays(train_x, train_y, test_x, test_y, names)


def read_archive(spec: CifarSpec, folder: Path) -> CifarArrays:
    """Decode the whole archive in ``folder`` (cached in-process; re-read when a file changes).

    Raises:
        DataError: a file is missing, unreadable, refused by the restricted unpickler, or malformed.
    """
    signature = tuple(_file_signature(folder / name) for name in spec.all_files)
    return _read_archive_cached(spec.name, str(folder.resolve()), signature)


def channel_mean_std(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact per-channel mean and std (population) of uint8 ``[N,3,H,W]`` images in pixel/255 units.

    Uses one 256-bin histogram per channel, so no float copy of the images is made.

    Returns:
        float32 ``mean`` and ``std``, each ``[1, 3, 1, 1]`` on the images' device.
    """
    levels = torch.arange(256, dtype=torch.float64, device=images.device) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = hist.sum()
        mean = (hist * levels).sum() / n
        var = (hist * (levels - mean) ** 2).sum() / n
        means.append(mean)
        stds.append(var.sqrt())
    shape = (1, len(means), 1, 1)
    return (
        torch.stack(means).to(torch.float32).reshape(shape),
        torch.stack(stds).to(torch.float32).reshape(shape),
    )


def load_cifar_lt(
    name: str,
    *,
    imbalance: float,
    profile: str = "exp",
    val_fraction: float = 0.1,
    data_seed: int = 0,
    root: str | os.PathLike | None = None,
    download: bool = False,
    augment: bool = True,
    device: torch.device | str = "cpu",
) -> SplitData:
    """Build CIFAR-10-LT or CIFAR-100-LT on ``device``.

    Args:
        name: ``"cifar10_lt"`` or ``"cifar100_lt"``.
        imbalance: rho >= 1 (1 keeps the full balanced training set).
        profile: ``"exp"`` or ``"step"``.
        val_fraction: fraction of each class moved to the validation split, in ``[0, 1)``.
        data_seed: seeds the choice of kept images and of the validation split.
        root: folder holding the archive folder (None: ``$FOCALBENCH_DATA``, else ``~/.cache/focalbench/data``).
        download: fetch the archive with torchvision when files are missing.
        augment: default for :func:`~focalbench.data.batches.iter_train_batches`.
        device: where the tensors live.

    Raises:
        DataError: archive missing (and ``download`` false), unreadable, refused or malformed; download failed.
        ConfigError: bad imbalance, profile or val_fraction.
    """
    spec = SPECS[name]
    counts = longtail_counts(spec.n_max, spec.n_classes, float(imbalance), profile)
    root_path = resolve_root(root)
    folder = archive_folder(spec, root_path)
    missing = missing_files(spec, folder)
    if missing and download:
        download_archives(spec, root_path)
        folder = archive_folder(spec, root_path)
        missing = missing_files(spec, folder)
    if missing:
        raise DataError(_not_found_message(spec, root_path, missing))

    arrays = read_archive(spec, folder)
    files, official_copy = provenance(spec, folder)

    all_labels = torch.from_numpy(arrays.train_y.copy())
    kept = select_longtail(all_labels, counts, child_generator(data_seed, f"{name}:longtail"))
    kept_labels = all_labels[kept]
    train_pos, val_pos = stratified_split(
        kept_labels, spec.n_classes, float(val_fraction), child_generator(data_seed, f"{name}:val")
    )
    train_idx, val_idx = kept[train_pos].numpy(), kept[val_pos].numpy()

    def to_device(array: np.ndarray) -> torch.Tensor:
        return torch.tensor(array, device=device)  # a copy: the cached arrays stay untouched

    train_x, train_y = to_device(arrays.train_x[train_idx]), to_device(arrays.train_y[train_idx])
    val_x, val_y = to_device(arrays.train_x[val_idx]), to_device(arrays.train_y[val_idx])
    test_x, test_y = to_device(arrays.test_x), to_device(arrays.test_y)
    mean, std = channel_mean_std(train_x)

    info = {
        "dataset": name,
        "imbalance": float(imbalance),
        "profile": profile,
        "val_fraction": float(val_fraction),
        "n_train": int(train_y.numel()),
        "n_val": int(val_y.numel()),
        "n_test": int(test_y.numel()),
        "data_seed": int(data_seed),
        "root": str(folder.resolve()),
        "files": files,
        "official_copy": official_copy,
        "normalization": "per-channel mean/std of the training split",
        "mean": [round(v, 6) for v in mean.flatten().tolist()],
        "std": [round(v, 6) for v in std.flatten().tolist()],
    }
    return SplitData(
        name=name,
        kind="image",
        n_classes=spec.n_classes,
        class_names=list(arrays.class_names),
        train_x=train_x,
        train_y=train_y,
        val_x=val_x,
        val_y=val_y,
        test_x=test_x,
        test_y=test_y,
        train_counts=class_counts(train_y, spec.n_classes),
        longtail_counts=counts,
        mean=mean,
        std=std,
        augment=bool(augment),
        info=info,
    )


def check_cifar(cfg, full_cfg=None) -> None:
    """Plan-time check of a ``data=cifar10_lt`` / ``cifar100_lt`` config: class count, ratio, types."""
    spec = SPECS[str(cfg.name)]
    n_classes = typed_field(cfg, "n_classes", int, "data")
    if n_classes != spec.n_classes:
        raise ConfigError(f"data.n_classes={n_classes}: {spec.name} has {spec.n_classes} classes")
    longtail_counts(
        spec.n_max, spec.n_classes, typed_field(cfg, "imbalance", float, "data"), str(cfg.profile)
    )
    for key in ("download", "augment"):
        typed_field(cfg, key, bool, "data")


def check_files(cfg) -> None:
    """Before a sweep runs: the archives must be on disk, or a download asked for."""
    if not cfg.download:
        require_archives(str(cfg.name), cfg.root)


def _load(cfg, device) -> SplitData:
    return load_cifar_lt(
        str(cfg.name),
        imbalance=typed_field(cfg, "imbalance", float, "data"),
        profile=str(cfg.profile),
        val_fraction=typed_field(cfg, "val_fraction", float, "data"),
        data_seed=typed_field(cfg, "data_seed", int, "data"),
        root=None if cfg.root is None else str(cfg.root),
        download=bool(cfg.download),
        augment=bool(cfg.augment),
        device=device,
    )


for _spec in SPECS.values():
    DATASETS.register(
        _spec.name,
        summary=f"{_spec.name} (Cao et al. 2019 protocol)",
        validate=check_cifar,
        kind="image",
        check_files=check_files,
    )(_load)
