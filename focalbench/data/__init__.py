"""Data: synthetic long-tailed tasks, CIFAR-10/100-LT and your own files, held as tensors on the training device.

Public API::

    load_data(cfg, device) -> SplitData            # dispatch on cfg.name
    iter_train_batches(data, batch_size, generator, augment=None)   # one shuffled, augmented epoch
    iter_eval_batches(data, split, batch_size)     # "val" | "test", in order, no augmentation
    longtail_counts(n_max, n_classes, imbalance, profile)
    shot_groups(train_counts, many_threshold=100, few_threshold=20)
    describe(data, many_threshold=100, few_threshold=20)

``cfg`` names a registered data source (``focalbench.registry.DATASETS``: ``synthetic`` in synthetic.py,
``cifar10_lt`` and ``cifar100_lt`` in cifar.py; your own data: ``table`` in table.py, ``features`` in
features.py and ``image_folder`` in image_folder.py, with their shared rules in own.py). Its fields and their defaults live in
``configs/data/<name>.yaml``; fields a caller leaves out are taken from there. ``cfg`` may be a Hydra
DictConfig, a dict or a SimpleNamespace.

Everything random is drawn from generators seeded by ``data_seed``: the same data seed gives identical
data whatever the training seed. The one exception is your own data with ``data.resplit`` (see
:mod:`focalbench.data.own`): there the run of training seed ``s`` carves its split with ``data_seed + s``. A
run loads :func:`run_data_config` of its config, which applies that; :func:`resolve_run_config` replaces
``data.resplit=auto`` by what it means for the data, as the run id and the record hold it.
"""

from __future__ import annotations

from typing import Any

import torch

from focalbench.config import with_preset_defaults
from focalbench.data.batches import iter_eval_batches, iter_train_batches
from focalbench.data.describe import describe
from focalbench.data.longtail import longtail_counts, shot_groups
from focalbench.data.split import SplitData
from focalbench.registry import DATASETS, import_submodules

import_submodules(__name__)  # each data source registers itself; a new module needs no line here

__all__ = [
    "SplitData",
    "describe",
    "iter_eval_batches",
    "iter_train_batches",
    "load_data",
    "resolve_run_config",
    "run_data_config",
    "longtail_counts",
    "shot_groups",
]


def load_data(cfg: Any, device: torch.device | str = "cpu") -> SplitData:
    """Build the task ``cfg`` describes, with every tensor on ``device``.

    Raises:
        ConfigError: unknown ``name`` or a field out of range.
        DataError: files missing, unreadable or refused (see the data source's module).
    """
    cfg = with_preset_defaults("data", cfg)
    entry = DATASETS.get(str(cfg.name))
    if entry.validate is not None:
        entry.validate(cfg, None)
    return entry.build(cfg, torch.device(device))


def resolved_resplit(data_cfg: Any) -> bool | None:
    """``data.resplit`` of a data config resolved against its data (``auto`` decided by the test split's
    size); None for a source without the key. Reads the data (cached per file signature)."""
    from omegaconf import OmegaConf

    if not OmegaConf.is_config(data_cfg):
        data_cfg = OmegaConf.create(data_cfg)
    entry = DATASETS.get(str(data_cfg.name))
    resolve = entry.meta.get("resplit")
    if resolve is None or "resplit" not in data_cfg:
        return None
    return resolve(data_cfg)


def resolve_run_config(cfg: Any) -> Any:
    """``cfg`` with ``data.resplit=auto`` replaced by true or false for its data (a copy; ``cfg`` itself when
    there is nothing to resolve), so that the record says what the run did."""
    from omegaconf import open_dict, read_write

    if cfg.data.get("resplit") != "auto":
        return cfg
    value = resolved_resplit(cfg.data)
    cfg = cfg.copy()
    with read_write(cfg), open_dict(cfg):
        cfg.data.resplit = bool(value)
    return cfg


def run_data_config(cfg: Any) -> Any:
    """The data config the run ``cfg`` (a full run config) loads: ``cfg.data``, or for your own data with
    ``data.resplit`` (resolved) true, the split of data seed ``data_seed + seed``."""
    from focalbench.data.own import data_config_for_seed

    resplit = resolved_resplit(cfg.data)
    return data_config_for_seed(cfg.data, int(cfg.seed), bool(resplit))
