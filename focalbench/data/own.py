"""What the three "your own data" sources share: labels, splits, the imbalance option, checks and provenance.

The sources (``data=table``, ``data=features``, ``data=image_folder``; one module each) read their files into
:class:`OwnArrays` (inputs, integer labels, class names, an optional given test set, provenance), cached
in-process per file signature (path, size, modification time). :func:`build_split_data` turns that into a
:class:`~focalbench.data.split.SplitData` for one data seed:

1. **Labels.** Labels may be strings or integers. The classes are the distinct labels of the training file
   (and of the test file, when one is given), in sorted order: numbers ascending, strings alphabetically
   (``np.unique``). Label ``i`` in every record, table and plot is the ``i``-th of them, and its name is kept.
   A file that lists its class names (an ``.npz``'s ``class_names``) has integer labels ``0 .. C-1`` in that
   order instead; an image folder's classes are its sorted sub-folder names (torchvision's ImageFolder).
2. **Test split.** A given test set is used as it is. Otherwise a stratified test split of
   ``data.test_fraction`` of each class (at least one example of a class that has two) is carved with the
   data seed. Either way every class must have a test example (a class of one example cannot), else the
   data is refused: balanced accuracy would average over the other classes without a word. A test split carved from imbalanced data is itself imbalanced: read balanced accuracy and the
   per-class metrics, not accuracy.
3. **Imbalance.** ``data.imbalance`` null (the default) keeps the natural class counts. A ratio ``rho``
   subsamples what is left to the long-tailed profile (``data.profile``), as on CIFAR: the classes are ranked
   by their count (ties by index), the largest keeps all of its ``n_max`` examples and the class of rank
   ``i`` keeps ``longtail_counts(n_max, C, rho, profile)[i]``, drawn with the data seed. A class with fewer
   examples than its rank needs is an error (its natural ratio is steeper than ``rho``).
4. **Validation split.** ``data.val_fraction`` of each class, stratified, as for CIFAR.
5. **A split per training seed** (``data.resplit``). With ``resplit`` true, the run of training seed ``s``
   carves steps 2-4 with the data seed ``data.data_seed + s`` instead of ``data.data_seed``: seed ``s`` trains
   and tests on the split that ``data.data_seed=data_seed+s`` would carve, so the seeds of a cell are paired
   units of (split, training noise) and a report's CIs cover both. ``auto`` (the default) means true exactly
   when the test split is carved and some class gets fewer than :data:`RESPLIT_BELOW` test examples: there the
   split alone moves balanced accuracy by more than the training seeds do (a 43-row test split: 56 to 75 across
   five data seeds against +-4 across training seeds), and a CI over one split would understate it. ``false``
   keeps one split for every seed (as before the key existed). A given test set is never re-split: ``true``
   with ``data.test_path`` (or a file's own ``x_test``) is refused, ``auto`` is false there.

``info["resplit"]`` says whether the split follows the training seed, ``info["data_seed"]`` is the seed it was
carved with. ``info["measured_imbalance"]`` is the training split's largest class count over its smallest;
``info["provenance"]`` holds the data file's path, size in bytes and sha256 (a folder: the number of files,
their total size and the sha256 of their sorted relative names and sizes); ``info["test_provenance"]`` the
same for a given test file, else None.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from focalbench.config import config_field, typed_field, validate_alpha
from focalbench.data.longtail import (
    class_counts,
    longtail_counts,
    n_val_per_class,
    select_longtail,
    stratified_split,
)
from focalbench.data.seeding import child_generator
from focalbench.data.split import SplitData
from focalbench.errors import ConfigError, DataError
from focalbench.registry import DATASETS

SUMMARY_DIGITS = 6
# A label column with more distinct values than this is refused unless data.max_classes allows it: a float or
# an identifier column taken for the label makes thousands of classes (one such sweep grew to 24 GB).
MAX_CLASSES_CAP = 1000
# ... as is one with more distinct values than half its rows (fewer than 2 examples per class on average:
# nothing to learn or test), once it has more than this many classes (small tables keep their few classes).
MIN_CLASSES_BOUND = 10
# data.resplit=auto re-splits per training seed when a carved test split holds fewer test examples than this
# of some class: a class recall from n examples has a binomial standard error up to 50/sqrt(n) points (9 at
# n = 30), larger than the spread between training seeds that a CI over one split would report.
RESPLIT_BELOW = 30
RESPLIT_VALUES = ("auto", True, False)


@dataclass(frozen=True)
class OwnArrays:
    """A data source's files, decoded, on the CPU (shared by every run of a process through the parse cache).

    ``x`` is float32 ``[N, F]`` (vectors, as read: not yet standardised) or uint8 ``[N, 3, H, W]`` (images);
    ``y`` int64 ``[N]`` in ``0 .. C-1``. ``x_test``/``y_test`` hold a given test set, else None.
    """

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: tuple[str, ...]
    label_order: str  # how the class order was decided, for the record
    provenance: dict
    test_provenance: dict | None = None
    feature_names: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)  # source-specific facts for info (JSON-serialisable)
    non_integer_labels: bool = False  # the labels were numbers with a fractional part (continuous-looking)


# ----------------------------------------------------------------------------------------------------------
# Config keys shared by the three sources
# ----------------------------------------------------------------------------------------------------------


def required_path(cfg: Any, key: str, what: str) -> Path:
    """``data.<key>`` as a user-expanded Path; ConfigError saying what it should name when it is not set."""
    value = config_field(cfg, key, missing=f"data.{key} is required: {what}")
    if not isinstance(value, str) or not value:
        raise ConfigError(f"wrong type for 'data.{key}': {value!r} is not a path")
    return Path(value).expanduser()


def optional_path(cfg: Any, key: str) -> Path | None:
    value = config_field(cfg, key, None, missing="")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"wrong type for 'data.{key}': {value!r} is not a path")
    return Path(value).expanduser()


def string_list(cfg: Any, key: str) -> tuple[str, ...] | None:
    """``data.<key>`` as a tuple of strings (a single string is a list of one); None when it is null."""
    value = config_field(cfg, key, None, missing="")
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    try:
        items = list(value)
    except TypeError:
        raise ConfigError(f"wrong type for 'data.{key}': {value!r} is not a list of column names") from None
    if any(isinstance(v, (list, dict)) or v is None for v in items):
        raise ConfigError(f"wrong type for 'data.{key}': {value!r} is not a list of column names")
    return tuple(str(v) for v in items)


def max_classes_setting(cfg: Any) -> int | None:
    """``data.max_classes``: None (the automatic bound of :func:`check_labels_are_classes`) or an integer >= 2."""
    value = config_field(cfg, "max_classes", None, missing="")
    if value is None:
        return None
    value = typed_field(cfg, "max_classes", int, "data")
    if value < 2:
        raise ConfigError(f"data.max_classes={value} is out of range: a classifier needs at least 2 classes")
    return value


@dataclass(frozen=True)
class SplitSettings:
    """The keys that decide the splits (the same for every source)."""

    test_fraction: float
    val_fraction: float
    imbalance: float | None
    profile: str
    data_seed: int
    n_classes: int | None
    resplit: str | bool = False  # "auto", True or False (data.resplit); see resolve_resplit


def resplit_setting(cfg: Any) -> str | bool:
    """``data.resplit``: ``"auto"``, true or false (absent: false, the behaviour before the key existed)."""
    value = config_field(cfg, "resplit", False, missing="")
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if value not in RESPLIT_VALUES or (value in (0, 1) and not isinstance(value, bool)):
        raise ConfigError(f"data.resplit={value} is not valid; choose one of: auto, true, false")
    return value


def split_settings(cfg: Any) -> SplitSettings:
    """Read and check the split keys (ConfigError in one line)."""
    test_fraction = typed_field(cfg, "test_fraction", float, "data")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"data.test_fraction={test_fraction} is out of range: must be in (0, 1)")
    val_fraction = typed_field(cfg, "val_fraction", float, "data")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"data.val_fraction={val_fraction} is out of range: must be in [0, 1)")
    imbalance = config_field(cfg, "imbalance", None, missing="")
    if imbalance is not None:
        imbalance = typed_field(cfg, "imbalance", float, "data")
        if not (math.isfinite(imbalance) and imbalance >= 1):
            raise ConfigError(
                f"data.imbalance={imbalance} is out of range: the ratio n_max/n_min must be >= 1"
            )
    profile = typed_field(cfg, "profile", str, "data")
    if profile not in ("exp", "step"):
        raise ConfigError(f"data.profile={profile} is not valid; choose one of: exp, step")
    n_classes = config_field(cfg, "n_classes", None, missing="")
    if n_classes is not None:
        n_classes = typed_field(cfg, "n_classes", int, "data")
    return SplitSettings(
        test_fraction=test_fraction,
        val_fraction=val_fraction,
        imbalance=imbalance,
        profile=profile,
        data_seed=typed_field(cfg, "data_seed", int, "data"),
        n_classes=n_classes,
        resplit=resplit_setting(cfg),
    )


# ----------------------------------------------------------------------------------------------------------
# Files: signatures, provenance, labels, finiteness
# ----------------------------------------------------------------------------------------------------------


def file_signature(path: Path, what: str = "data file") -> tuple[str, int, int]:
    """``(absolute path, size, mtime_ns)`` of a regular file; DataError naming it when there is none."""
    try:
        stat = path.stat()
    except OSError:
        raise DataError(f"{path}: no such {what}") from None
    if not path.is_file():
        raise DataError(f"{path}: not a file (the {what} must be a file)")
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_provenance(signature: tuple[str, int, int]) -> dict:
    """``{"path", "bytes", "sha256"}`` of a file (the sha256 is cached per path, size and mtime)."""
    path, size, mtime_ns = signature
    return {"path": path, "bytes": size, "sha256": _sha256_cached(path, size, mtime_ns)}


def label_name(value: Any) -> str:
    """A label as a class name: integral floats without the '.0', everything else as ``str``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _label_array(values: Any, where: str, what: str) -> np.ndarray:
    """A 1-D array of labels with no missing value: numbers (integral floats become int64) or strings."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{where}: {what} has shape {list(arr.shape)}; expected one label per row")
    if arr.dtype.kind == "O":  # pandas object columns: strings, maybe mixed with numbers or missing values
        missing = [i for i, v in enumerate(arr) if v is None or (isinstance(v, float) and math.isnan(v))]
        if missing:
            raise DataError(f"{where}: {len(missing)} rows of {what} have no label (first: row {missing[0]})")
        return arr.astype(str)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: {int(bad.sum())} rows of {what} have no label (first: row {first})")
        if np.all(arr == np.round(arr)):
            return arr.astype(np.int64)
        return arr
    if arr.dtype.kind in "biuUS":
        return arr.astype(str) if arr.dtype.kind == "S" else arr
    raise DataError(f"{where}: {what} has dtype {arr.dtype}; labels must be integers or strings")


def encode_labels(
    y: Any, y_test: Any | None, where: str, test_where: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Integer codes of the labels, by the sorted distinct labels of the training and test files together.

    Returns ``(codes, test_codes or None, class_names)``.
    """
    train = _label_array(y, where, "the labels")
    test = None if y_test is None else _label_array(y_test, test_where or where, "the test labels")
    if test is not None and (train.dtype.kind in "US") != (test.dtype.kind in "US"):
        train, test = train.astype(str), test.astype(str)  # one file has string labels: compare as strings
    values = train if test is None else np.concatenate([train, test])
    classes = np.unique(values)
    codes = np.searchsorted(classes, train).astype(np.int64)
    test_codes = None if test is None else np.searchsorted(classes, test).astype(np.int64)
    return codes, test_codes, tuple(label_name(v) for v in classes.tolist())


def has_non_integer_numbers(values: Any) -> bool:
    """Whether ``values`` are floating-point numbers of which at least one has a fractional part."""
    arr = np.asarray(values)
    if arr.dtype.kind != "f":
        return False
    finite = arr[np.isfinite(arr)]
    return bool(finite.size) and not bool(np.all(finite == np.round(finite)))


def automatic_class_bound(n_rows: int) -> int:
    """The most classes a label column may have without ``data.max_classes``: half the rows, at least
    :data:`MIN_CLASSES_BOUND` and at most :data:`MAX_CLASSES_CAP`."""
    return max(MIN_CLASSES_BOUND, min(MAX_CLASSES_CAP, n_rows // 2))


def check_labels_are_classes(arrays: OwnArrays, max_classes: int | None, where: str, what: str) -> None:
    """DataError unless the labels look like classes rather than a continuous quantity or an identifier.

    Without ``max_classes`` (``data.max_classes`` null) the labels are refused when they are numbers with a
    fractional part, or when they have more distinct values than :func:`automatic_class_bound` of the rows.
    With it, only more classes than ``max_classes`` are refused: the user has said how many to expect.
    ``what`` names the label column in the message (``"data.target 'Na'"``).
    """
    n_classes = len(arrays.class_names)
    n_rows = len(arrays.y) + (0 if arrays.y_test is None else len(arrays.y_test))
    if max_classes is not None:
        if n_classes > max_classes:
            raise DataError(
                f"{where}: {what} has {n_classes} distinct values, more than data.max_classes={max_classes}"
            )
        return
    bound = automatic_class_bound(n_rows)
    if arrays.non_integer_labels:
        why = f"non-integer numbers, {n_classes} distinct values in {n_rows} rows"
    elif n_classes > bound:
        rule = f"the cap of {MAX_CLASSES_CAP}" if bound == MAX_CLASSES_CAP else f"half the rows ({bound})"
        why = f"{n_classes} distinct values in {n_rows} rows, more than {rule}"
    else:
        return
    raise DataError(
        f"{where}: {what} looks continuous or like an identifier, not like class labels ({why}; each value "
        f"would be a class): choose a column of class labels, or set data.max_classes={n_classes} to train "
        f"{n_classes} classes"
    )


def check_coded_labels(y: np.ndarray, n_classes: int, where: str, what: str = "the labels") -> np.ndarray:
    """Integer labels in ``0 .. n_classes-1`` (a file that lists its class names)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise DataError(f"{where}: {what} has shape {list(arr.shape)}; expected one label per row")
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise DataError(f"{where}: with class_names given, {what} must be integers 0..{n_classes - 1}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise DataError(
            f"{where}: {what} range over {int(arr.min())}..{int(arr.max())} but class_names lists "
            f"{n_classes} classes"
        )
    return arr.astype(np.int64)


def check_finite(x: np.ndarray, where: str, names: Sequence[str] = ()) -> None:
    """DataError naming the file (and the columns, when named) if ``x`` holds NaN or infinite values."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1))
    if names:
        cols = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
        shown = ", ".join(f"'{c}'" for c in cols[:5]) + (
            f" and {len(cols) - 5} more" if len(cols) > 5 else ""
        )
        raise DataError(
            f"{where}: {int(bad.sum())} NaN or infinite feature values in column(s) {shown} "
            f"(first at row {int(rows[0])}); fill or drop them"
        )
    raise DataError(
        f"{where}: {int(bad.sum())} NaN or infinite feature values in {len(rows)} rows "
        f"(first: row {int(rows[0])}); fill or drop them"
    )


def check_lengths(x: np.ndarray, y: np.ndarray, where: str, what: str = "x") -> None:
    if len(x) != len(y):
        raise DataError(f"{where}: {what} has {len(x)} rows but its labels have {len(y)}; they must match")


def check_classes(arrays: OwnArrays, settings: SplitSettings, where: str) -> None:
    """At least two classes, and as many as ``data.n_classes`` says when it is given."""
    n = len(arrays.class_names)
    if n < 2:
        only = f" ('{arrays.class_names[0]}')" if n else ""
        raise DataError(f"{where}: the labels hold {n} class{only}; a classifier needs at least 2")
    if settings.n_classes is not None and settings.n_classes != n:
        names = ", ".join(arrays.class_names[:10]) + (", ..." if n > 10 else "")
        raise ConfigError(f"data.n_classes={settings.n_classes} but {where} has {n} classes ({names})")


# ----------------------------------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Splits:
    """Row indices (int64, sorted) into ``OwnArrays.x`` (train, val) and into the test rows."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    test_given: bool
    pool_counts: list[int]  # per class, before the imbalance subsample (after the test split is carved)
    longtail_counts: list[int]  # per class, after the subsample, before the validation split


def imbalance_targets(counts: list[int], imbalance: float, profile: str, names: Sequence[str], where: str):
    """Per-class sizes of the long-tailed subsample: classes ranked by count, ``n_max`` the largest count."""
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    profile_counts = longtail_counts(max(counts), len(counts), imbalance, profile)
    targets = [0] * len(counts)
    for rank, c in enumerate(order):
        targets[c] = profile_counts[rank]
        if counts[c] < targets[c]:
            natural = max(counts) / max(min(counts), 1)
            raise DataError(
                f"{where}: imbalance={imbalance:g} needs {targets[c]} examples of class '{names[c]}' "
                f"(rank {rank + 1} of {len(counts)} by count) but it has {counts[c]}: the data's natural "
                f"ratio is {natural:.3g}; use a larger imbalance, or none to keep the natural counts"
            )
    return targets


def check_every_class_tested(arrays: OwnArrays, test: torch.Tensor, where: str) -> None:
    """DataError naming the classes with no example in the test split (``test``: its rows): balanced
    accuracy and macro-F1 average over the classes the test split holds, so such a class would drop out of
    them without a word. A carved split misses only a class of one example; a given test set may miss any."""
    n_classes = len(arrays.class_names)
    given = arrays.y_test is not None
    test_y = torch.from_numpy(arrays.y_test) if given else torch.from_numpy(arrays.y)[test]
    totals = class_counts(torch.from_numpy(arrays.y), n_classes)
    lacking = [c for c, n in enumerate(class_counts(test_y, n_classes)) if n == 0]
    if not lacking:
        return
    more = f" and {len(lacking) - 5} more" if len(lacking) > 5 else ""
    if given:
        shown = ", ".join(f"'{arrays.class_names[c]}' ({totals[c]} in training)" for c in lacking[:5])
        test_where = (arrays.test_provenance or {}).get("path") or f"the test set of {where}"
        raise DataError(
            f"{test_where}: class {shown}{more} has no test example, so balanced accuracy would leave it "
            f"out; add test examples of it, or remove its training rows"
        )
    shown = ", ".join(
        f"'{arrays.class_names[c]}' has {totals[c]} example{'s' if totals[c] != 1 else ''}"
        for c in lacking[:5]
    )
    raise DataError(
        f"{where}: class {shown}{more}: too few to reach both the training and the test split, so balanced "
        f"accuracy would leave it out; add examples, or remove or merge its rows"
    )


def carved_test_counts(arrays: OwnArrays, settings: SplitSettings) -> list[int] | None:
    """Per class, how many test examples the carved test split holds (the same for every data seed: the
    split is stratified); None when the test set is given."""
    if arrays.y_test is not None:
        return None
    counts = class_counts(torch.from_numpy(arrays.y), len(arrays.class_names))
    return [n_val_per_class(n, settings.test_fraction) for n in counts]


def resolve_resplit(arrays: OwnArrays, settings: SplitSettings) -> bool:
    """Whether the split follows the training seed (module docstring, step 5): ``data.resplit`` resolved.

    ``auto`` is true when the test split is carved and its smallest class has fewer than
    :data:`RESPLIT_BELOW` test examples. ConfigError for ``true`` with a given test set."""
    counts = carved_test_counts(arrays, settings)
    if settings.resplit is True and counts is None:
        raise ConfigError(
            "data.resplit=true re-carves the test split per training seed, but this data has a given test "
            "set (data.test_path, or the file's own test arrays); drop one of them"
        )
    if settings.resplit == "auto":
        return counts is not None and min(counts) < RESPLIT_BELOW
    return bool(settings.resplit)


def make_splits(arrays: OwnArrays, settings: SplitSettings, source: str, where: str) -> Splits:
    """The test, training and validation rows for one data seed (steps 2-4 of the module docstring)."""
    n_classes = len(arrays.class_names)
    y = torch.from_numpy(arrays.y)
    seed = settings.data_seed
    if arrays.y_test is not None:
        pool = torch.arange(len(y))
        test = torch.arange(len(arrays.y_test))
    else:
        pool, test = stratified_split(
            y, n_classes, settings.test_fraction, child_generator(seed, f"{source}:test")
        )
    pool_counts = class_counts(y[pool], n_classes)
    missing = [arrays.class_names[c] for c, n in enumerate(pool_counts) if n == 0]
    if missing:
        shown = ", ".join(f"'{m}'" for m in missing[:5])
        raise DataError(
            f"{where}: class(es) {shown} have no training example after splitting (only in the test set)"
        )
    check_every_class_tested(arrays, test, where)
    if settings.imbalance is not None:
        targets = imbalance_targets(
            pool_counts, settings.imbalance, settings.profile, arrays.class_names, where
        )
        kept = select_longtail(y[pool], targets, child_generator(seed, f"{source}:longtail"))
        pool = pool[kept]
    kept_counts = class_counts(y[pool], n_classes)
    train_pos, val_pos = stratified_split(
        y[pool], n_classes, settings.val_fraction, child_generator(seed, f"{source}:val")
    )
    return Splits(
        train=pool[train_pos],
        val=pool[val_pos],
        test=test,
        test_given=arrays.y_test is not None,
        pool_counts=pool_counts,
        longtail_counts=kept_counts,
    )


# ----------------------------------------------------------------------------------------------------------
# Vectors: standardisation and the feature summary
# ----------------------------------------------------------------------------------------------------------


def train_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (population) of ``x``; a constant feature gets std 1 (it is only centred)."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=0)
    std = x64.std(axis=0)
    std[~(std > 1e-12)] = 1.0
    return mean, std


def feature_summary(x_train: np.ndarray, names: Sequence[str]) -> list[dict]:
    """One row per feature of the raw training split: name, mean, std, min, max (``data info`` prints it)."""
    if x_train.size == 0:
        return []
    x64 = x_train.astype(np.float64)
    stats = zip(x64.mean(axis=0), x64.std(axis=0), x64.min(axis=0), x64.max(axis=0), strict=True)
    return [
        {
            "feature": name,
            "mean": round(float(m), SUMMARY_DIGITS),
            "std": round(float(s), SUMMARY_DIGITS),
            "min": round(float(lo), SUMMARY_DIGITS),
            "max": round(float(hi), SUMMARY_DIGITS),
        }
        for name, (m, s, lo, hi) in zip(names, stats, strict=True)
    ]


# ----------------------------------------------------------------------------------------------------------
# Assembly
# ----------------------------------------------------------------------------------------------------------


def build_split_data(
    source: str,
    kind: str,
    arrays: OwnArrays,
    splits: Splits,
    settings: SplitSettings,
    device: torch.device,
    *,
    resplit: bool = False,
    standardize: bool = False,
    augment: bool = False,
    flip: bool = True,
    channel_stats=None,
) -> SplitData:
    """The SplitData of one data seed, every tensor on ``device``.

    ``resplit``: whether this split follows the training seed (recorded as ``info["resplit"]``).
    Vectors are standardised with the training split's per-feature mean and std when ``standardize``;
    ``channel_stats(train_images)`` gives the per-channel mean/std of images.
    """
    train_np, val_np = splits.train.numpy(), splits.val.numpy()
    x_test = arrays.x if arrays.x_test is None else arrays.x_test
    y_test = arrays.y if arrays.y_test is None else arrays.y_test
    test_np = splits.test.numpy()
    parts = {
        "train": (arrays.x[train_np], arrays.y[train_np]),
        "val": (arrays.x[val_np], arrays.y[val_np]),
        "test": (x_test[test_np], y_test[test_np]),
    }
    summary: list[dict] = []
    extra_info: dict = {}
    if kind == "vector":
        names = arrays.feature_names or tuple(f"x{j}" for j in range(arrays.x.shape[1]))
        summary = feature_summary(parts["train"][0], names)
        if standardize:
            mean, std = train_statistics(parts["train"][0])
            parts = {k: (((x - mean) / std).astype(np.float32), y) for k, (x, y) in parts.items()}
        extra_info["standardization"] = (
            "per-feature mean/std of the training split" if standardize else "none (features used as read)"
        )
    tensors = {
        k: (torch.tensor(x, device=device), torch.tensor(y, device=device)) for k, (x, y) in parts.items()
    }
    mean_t = std_t = None
    if kind == "image":
        mean_t, std_t = channel_stats(tensors["train"][0])
        extra_info |= {
            "augmentation": augmentation_text(augment, flip),
            "normalization": "per-channel mean/std of the training split",
            "mean": [round(v, 6) for v in mean_t.flatten().tolist()],
            "std": [round(v, 6) for v in std_t.flatten().tolist()],
        }
    n_classes = len(arrays.class_names)
    train_counts = class_counts(tensors["train"][1], n_classes)
    smallest = min(train_counts)
    info = {
        "dataset": source,
        "imbalance": settings.imbalance,
        "profile": settings.profile,
        "measured_imbalance": round(max(train_counts) / smallest, 4) if smallest else None,
        "natural_counts": list(splits.pool_counts),
        "val_fraction": settings.val_fraction,
        "test": "given"
        if splits.test_given
        else f"carved: stratified {settings.test_fraction:g} of each class",
        "test_fraction": None if splits.test_given else settings.test_fraction,
        "n_train": len(train_np),
        "n_val": len(val_np),
        "n_test": len(test_np),
        "data_seed": settings.data_seed,
        "resplit": resplit,
        "root": arrays.provenance.get("path"),
        "files": {},
        "official_copy": None,
        "label_order": arrays.label_order,
        "provenance": arrays.provenance,
        "test_provenance": arrays.test_provenance,
        **extra_info,
        **arrays.extra,
    }
    json.dumps(info)  # the record must be able to hold it
    return SplitData(
        name=source,
        kind=kind,
        n_classes=n_classes,
        class_names=list(arrays.class_names),
        train_x=tensors["train"][0],
        train_y=tensors["train"][1],
        val_x=tensors["val"][0],
        val_y=tensors["val"][1],
        test_x=tensors["test"][0],
        test_y=tensors["test"][1],
        train_counts=train_counts,
        longtail_counts=list(splits.longtail_counts),
        mean=mean_t,
        std=std_t,
        augment=augment,
        info=info,
        feature_summary=summary,
        flip=flip,
    )


def augmentation_text(augment: bool, flip: bool) -> str:
    """What an image source's augmentation does, in words (``data info`` and the record)."""
    if not augment:
        return "none (data.augment=false)"
    if flip:
        return "random crop (4-pixel zero padding) and horizontal flip (data.flip=true)"
    return "random crop (4-pixel zero padding), no horizontal flip (data.flip=false)"


def check_prepared(
    arrays: OwnArrays, settings: SplitSettings, source: str, where: str, full_cfg: Any
) -> None:
    """Every plan-time check that needs the data: classes, alpha against the class count, the splits."""
    check_classes(arrays, settings, where)
    if full_cfg is not None:  # the plan-time check of a whole config: alpha needs the class count
        validate_alpha(_plain(full_cfg.alpha), len(arrays.class_names))
    make_splits(arrays, settings, source, where)
    resolve_resplit(arrays, settings)


def _plain(value: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def cache_root() -> Path:
    """Where focalbench keeps decoded data: ``$FOCALBENCH_CACHE``, else ``~/.cache/focalbench``."""
    return Path(os.environ.get("FOCALBENCH_CACHE") or "~/.cache/focalbench").expanduser()


def register_source(name: str, summary: str, kind: str, read, build_options=lambda cfg: {}) -> None:
    """Register a your-own-data source in ``DATASETS``.

    ``read(cfg) -> (OwnArrays, SplitSettings, where)`` parses the files ``cfg`` names (cached per file
    signature, so a sweep reads them once). The plan-time check (``validate`` and ``check_files`` both) parses
    them and dry-runs the splits; the loader splits and builds the ``SplitData``, with ``build_options(cfg)``
    passed to :func:`build_split_data`.
    """

    def check(cfg, full_cfg=None) -> None:
        arrays, settings, where = read(cfg)
        check_prepared(arrays, settings, name, where, full_cfg)

    def load(cfg, device) -> SplitData:
        arrays, settings, where = read(cfg)
        splits = make_splits(arrays, settings, name, where)
        resplit = resolve_resplit(arrays, settings)
        options = build_options(cfg)
        return build_split_data(name, kind, arrays, splits, settings, device, resplit=resplit, **options)

    def resplit(cfg) -> bool:
        arrays, settings, _ = read(cfg)
        return resolve_resplit(arrays, settings)

    DATASETS.register(name, summary=summary, validate=check, kind=kind, check_files=check, resplit=resplit)(
        load
    )


def data_config_for_seed(data_cfg: Any, seed: int, resplit: bool) -> Any:
    """The data config the run of training seed ``seed`` loads: ``data_cfg`` itself, or with ``resplit`` a
    copy whose ``data_seed`` is ``data_seed + seed`` (module docstring, step 5) and ``resplit`` true."""
    if not resplit:
        return data_cfg
    from omegaconf import OmegaConf

    plain = (
        OmegaConf.to_container(data_cfg, resolve=True) if OmegaConf.is_config(data_cfg) else dict(data_cfg)
    )
    return OmegaConf.create(plain | {"resplit": True, "data_seed": int(plain["data_seed"]) + int(seed)})
