"""The long-tailed protocol (Cao et al. 2019, LDAM-DRW; Cui et al. 2019) and stratified splits.

Class sizes, for C classes, largest class ``n_max`` and imbalance ratio ``rho = n_max / n_min``:

- ``exp``:  ``n_i = int(n_max * rho ** (-i / (C - 1)))`` for ``i = 0 .. C-1``.
- ``step``: the first ``C // 2`` classes keep ``n_max``, the rest ``int(n_max / rho)``.

``rho = 1`` gives the balanced set. For CIFAR-10 (``n_max = 5000``) at ``rho = 100`` the ``exp`` profile
gives ``[5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]``.

Which samples a class keeps and which go to the validation split are drawn from generators seeded by
the data seed (see :mod:`focalbench.data.seeding`), never from the global RNG.

Shot groups (for many/medium/few-shot accuracy), by training count ``n``: ``many`` if
``n > many_threshold``, ``few`` if ``n < few_threshold``, else ``medium`` (defaults 100 and 20).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from focalbench.errors import ConfigError, DataError

PROFILES = ("exp", "step")


def longtail_counts(n_max: int, n_classes: int, imbalance: float, profile: str) -> list[int]:
    """Per-class sample counts of the long-tailed set (formulas in the module docstring).

    Raises:
        ConfigError: ``n_classes < 2``, ``n_max < 1``, ``imbalance < 1``, an unknown profile, or a
            ratio so large that the smallest class would be empty.
    """
    if n_classes < 2:
        raise ConfigError(f"data.n_classes must be at least 2, got {n_classes}")
    if n_max < 1:
        raise ConfigError(f"data.n_max must be at least 1, got {n_max}")
    if not imbalance >= 1:
        raise ConfigError(f"imbalance must be a ratio n_max/n_min >= 1, got {imbalance}")
    if profile == "exp":
        counts = [int(n_max * imbalance ** (-i / (n_classes - 1))) for i in range(n_classes)]
    elif profile == "step":
        n_head = n_classes // 2
        counts = [n_max] * n_head + [int(n_max / imbalance)] * (n_classes - n_head)
    else:
        raise ConfigError(f"data.profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    if min(counts) < 1:
        raise ConfigError(
            f"imbalance={imbalance} leaves the smallest class empty with n_max={n_max}; "
            f"use imbalance <= {n_max}"
        )
    return counts


def select_longtail(labels: Tensor, counts: list[int], generator: torch.Generator) -> Tensor:
    """Indices of a random long-tailed subset: ``counts[c]`` samples drawn without replacement from class c.

    Each class is shuffled with ``generator`` and its first ``counts[c]`` samples are kept, so for one
    generator seed a smaller ratio's subset contains every larger ratio's subset (nested subsets).

    Args:
        labels: int64 ``[N]`` on the CPU.
        counts: per-class sizes to keep.
        generator: CPU generator.

    Returns:
        int64 ``[sum(counts)]`` indices into ``labels``, sorted ascending.

    Raises:
        DataError: a class has fewer samples than requested (the archive is not the full dataset).
    """
    kept = []
    for c, n_c in enumerate(counts):
        pool = torch.nonzero(labels == c).flatten()
        if n_c > pool.numel():
            raise DataError(
                f"class {c} has {pool.numel()} samples in the archive; the long-tailed set needs {n_c}"
            )
        kept.append(pool[torch.randperm(pool.numel(), generator=generator)[:n_c]])
    return torch.cat(kept).sort().values


def n_val_per_class(count: int, val_fraction: float) -> int:
    """Validation size of one class: ``round(val_fraction * count)``, at least 1 when ``val_fraction > 0``,
    and never the whole class (the training split keeps at least one sample when the class has two)."""
    if val_fraction <= 0 or count < 2:
        return 0
    n_val = max(1, math.floor(val_fraction * count + 0.5))
    return min(n_val, count - 1)


def stratified_split(
    labels: Tensor, n_classes: int, val_fraction: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Split indices into training and validation, class by class (:func:`n_val_per_class` per class).

    Args:
        labels: int64 ``[N]`` on the CPU.
        n_classes: C.
        val_fraction: in ``[0, 1)``.
        generator: CPU generator that picks which samples of each class go to validation.

    Returns:
        ``(train_idx, val_idx)``, int64 index tensors into ``labels``, each sorted ascending.
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    train, val = [], []
    for c in range(n_classes):
        pool = torch.nonzero(labels == c).flatten()
        pool = pool[torch.randperm(pool.numel(), generator=generator)]
        n_val = n_val_per_class(pool.numel(), val_fraction)
        val.append(pool[:n_val])
        train.append(pool[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def class_counts(labels: Tensor, n_classes: int) -> list[int]:
    """Per-class counts of an int64 label tensor (any device), as Python ints."""
    return torch.bincount(labels.cpu(), minlength=n_classes).tolist()


def shot_groups(train_counts: list[int], many_threshold: int = 100, few_threshold: int = 20) -> list[str]:
    """``"many"`` (count > many_threshold), ``"few"`` (count < few_threshold) or ``"medium"`` per class."""
    if few_threshold > many_threshold:
        raise ConfigError(
            f"few_threshold ({few_threshold}) must not exceed many_threshold ({many_threshold})"
        )
    groups = []
    for n in train_counts:
        if n > many_threshold:
            groups.append("many")
        elif n < few_threshold:
            groups.append("few")
        else:
            groups.append("medium")
    return groups
