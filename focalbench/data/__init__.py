"""Data: synthetic long-tailed tasks and CIFAR-10/100-LT, held as tensors on the training device.

Public API::

    load_data(cfg, device) -> SplitData            # dispatch on cfg.name
    iter_train_batches(data, batch_size, generator, augment=None)   # one shuffled, augmented epoch
    iter_eval_batches(data, split, batch_size)     # "val" | "test", in order, no augmentation
    longtail_counts(n_max, n_classes, imbalance, profile)
    shot_groups(train_counts, many_threshold=100, few_threshold=20)
    describe(data, many_threshold=100, few_threshold=20)

``cfg`` fields (attribute or mapping access; a Hydra DictConfig, a dict or a SimpleNamespace):

- all: ``name`` ("synthetic" | "cifar10_lt" | "cifar100_lt"), ``imbalance`` (rho >= 1), ``profile``
  ("exp" | "step"), ``val_fraction`` (in [0, 1), default 0.1), ``data_seed`` (default 0).
- synthetic: ``n_classes``, ``n_features``, ``n_max``, ``separation``, ``label_noise``, ``hard_fraction``,
  ``test_per_class`` (defaults: the ``synthetic`` preset, see :mod:`focalbench.data.synthetic`).
- cifar: ``root`` (None: ``$FOCALBENCH_DATA``, else ``~/.cache/focalbench/data``), ``download``
  (default False), ``augment`` (default True); ``n_classes``, if given, must match the dataset.

Everything random is drawn from generators seeded by ``data_seed``: the same data seed gives identical
data whatever the training seed.
"""

from __future__ import annotations

from typing import Any

import torch

from focalbench.config import REQUIRED, config_field
from focalbench.data.batches import iter_eval_batches, iter_train_batches
from focalbench.data.cifar import SPECS as CIFAR_SPECS
from focalbench.data.cifar import load_cifar_lt
from focalbench.data.describe import describe
from focalbench.data.longtail import longtail_counts, shot_groups
from focalbench.data.split import SplitData
from focalbench.data.synthetic import make_synthetic
from focalbench.errors import ConfigError

__all__ = [
    "DATASETS",
    "SplitData",
    "describe",
    "iter_eval_batches",
    "iter_train_batches",
    "load_data",
    "longtail_counts",
    "shot_groups",
]

DATASETS = ("synthetic", *CIFAR_SPECS)


def _field(cfg: Any, key: str, default: Any = REQUIRED) -> Any:
    return config_field(cfg, key, default, missing=f"data.{key} is required")


def load_data(cfg: Any, device: torch.device | str = "cpu") -> SplitData:
    """Build the task ``cfg`` describes, with every tensor on ``device``.

    Raises:
        ConfigError: unknown ``name`` or a field out of range.
        DataError: CIFAR archive missing, unreadable or refused (see :mod:`focalbench.data.cifar`).
    """
    name = _field(cfg, "name")
    if name not in DATASETS:
        raise ConfigError(f"data.name must be one of {', '.join(DATASETS)}; got {name!r}")
    common = {
        "imbalance": float(_field(cfg, "imbalance")),
        "profile": str(_field(cfg, "profile", "exp")),
        "val_fraction": float(_field(cfg, "val_fraction", 0.1)),
        "data_seed": int(_field(cfg, "data_seed", 0)),
        "device": torch.device(device),
    }
    if name == "synthetic":
        return make_synthetic(
            n_classes=int(_field(cfg, "n_classes", 10)),
            n_features=int(_field(cfg, "n_features", 16)),
            n_max=int(_field(cfg, "n_max", 1000)),
            separation=float(_field(cfg, "separation", 3.0)),
            label_noise=float(_field(cfg, "label_noise", 0.0)),
            hard_fraction=float(_field(cfg, "hard_fraction", 0.2)),
            test_per_class=int(_field(cfg, "test_per_class", 500)),
            **common,
        )
    spec = CIFAR_SPECS[name]
    n_classes = _field(cfg, "n_classes", spec.n_classes)
    if int(n_classes) != spec.n_classes:
        raise ConfigError(f"data.n_classes must be {spec.n_classes} for {name}, got {n_classes}")
    root = _field(cfg, "root", None)
    return load_cifar_lt(
        name,
        root=None if root is None else str(root),
        download=bool(_field(cfg, "download", False)),
        augment=bool(_field(cfg, "augment", True)),
        **common,
    )
