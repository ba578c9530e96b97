"""Your own feature vectors or embeddings (``data=features``): an ``.npz``, ``.npy`` or ``.pt`` file.

Keys (``configs/data/features.yaml`` holds their defaults):

- ``path``, one of:

  - ``.npz`` (``np.savez``): arrays ``x`` (``[N, F]``) and ``y`` (``[N]``), and optionally ``x_test`` and
    ``y_test`` (a given test set, used as it is) and ``class_names`` (``[C]`` strings; then ``y`` holds
    integers ``0 .. C-1`` in that order);
  - ``.pt`` / ``.pth`` (``torch.save``): a dict with the same keys (tensors; labels may also be a list of
    strings, ``class_names`` a list of strings), or a single ``[N, F]`` tensor with its labels in
    ``labels_path``;
  - ``.npy`` (``np.save``): the ``[N, F]`` array alone, with its labels in ``labels_path``.

- ``labels_path``: for an ``.npy`` file or a bare ``.pt`` tensor, the labels, one per row: an ``.npy``
  array, a ``.pt`` tensor or list, or a ``.txt`` file with one label per line. Labels may be integers or
  strings (class order: :mod:`focalbench.data.own`).
- ``standardize``: scale each input with the training split's mean and std (default true).
- ``max_classes``: null (the default) refuses labels that look continuous or like identifiers (numbers with
  a fractional part, or more distinct values than half the rows or 1,000); a number accepts up to that many
  classes (:func:`focalbench.data.own.check_labels_are_classes`).

Loading is safe: ``np.load(..., allow_pickle=False)`` and ``torch.load(..., weights_only=True)``, so no
pickle is ever run; an object array (which needs a pickle) is refused with one line. Inputs must be finite
numbers, as many rows as labels. Models: ``linear`` (a linear probe) or ``mlp``.
"""

from __future__ import annotations

import functools
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from focalbench.config import first_line, other_data_option_hint, typed_field
from focalbench.data.own import (
    OwnArrays,
    SplitSettings,
    check_coded_labels,
    check_finite,
    check_labels_are_classes,
    check_lengths,
    encode_labels,
    file_provenance,
    file_signature,
    has_non_integer_numbers,
    max_classes_setting,
    optional_path,
    register_source,
    required_path,
    split_settings,
)
from focalbench.errors import ConfigError, DataError

KEYS = ("x", "y", "x_test", "y_test", "class_names")
SUFFIXES = {".npz": "npz", ".npy": "npy", ".pt": "pt", ".pth": "pt"}
LABEL_SUFFIXES = {".npy": "npy", ".pt": "pt", ".pth": "pt", ".txt": "txt"}
NPY_MAGIC = b"\x93NUMPY"
PICKLE_REFUSED = "holds Python objects, which need a pickle; focalbench never loads pickles"


def file_format(path: Path, suffixes: dict[str, str], key: str) -> str:
    """The format of ``path`` by its suffix; ConfigError naming the suffixes read (and, for ``data.path``, the
    data option that reads the file given, e.g. data=table for a CSV)."""
    fmt = suffixes.get(path.suffix.lower())
    if fmt is None:
        hint = other_data_option_hint(path, "features") if key == "path" else ""
        raise ConfigError(f"data.{key}={path}: not a supported file; use one of {', '.join(suffixes)}{hint}")
    return fmt


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """The known arrays of an ``.npz`` file, read without pickles."""
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not an .npz file (not a zip archive of arrays)")
    key = None
    out = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in KEYS:
                if key in npz.files:
                    out[key] = npz[key]
            present = list(npz.files)
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(
                f"{path}: array '{key}' {PICKLE_REFUSED}; save it as a numeric or string array"
            ) from None
        raise DataError(f"{path}: not a readable .npz file ({first_line(exc)})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({first_line(exc)})") from None
    if "x" not in out or "y" not in out:
        raise DataError(f"{path}: an .npz needs arrays 'x' and 'y'; it holds {', '.join(present) or 'none'}")
    return out


def load_npy(path: Path, what: str = "array") -> np.ndarray:
    """One ``.npy`` array, read without pickles."""
    with open(path, "rb") as f:
        magic = f.read(len(NPY_MAGIC))
    if magic != NPY_MAGIC:
        raise DataError(f"{path}: not an .npy file (no numpy header)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(f"{path}: the {what} {PICKLE_REFUSED}; save a numeric or string array") from None
        raise DataError(f"{path}: not a readable .npy file ({first_line(exc)})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({first_line(exc)})") from None


def load_pt(path: Path) -> Any:
    """A ``torch.save`` file read with ``weights_only=True``: tensors, lists, dicts and strings only."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(
            f"{path}: refused: it holds objects other than tensors, numbers, strings, lists and dicts, which "
            f"torch.load(weights_only=True) will not unpickle ({_refused_what(exc)}); save tensors and plain lists"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zip errors, ...: not a torch file
        raise DataError(f"{path}: not a readable .pt file ({first_line(exc)[:160]})") from None


def _refused_what(exc: Exception) -> str:
    """The offending global named in torch's weights-only error, e.g. 'numpy.core.multiarray.scalar'."""
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    return f"found {match.group(1)}" if match else "not a plain tensor file"


def _to_numpy(value: Any, where: str, key: str) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        return value.numpy()
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value)
    raise DataError(f"{where}: '{key}' is a {type(value).__name__}; expected a tensor or a list")


def load_labels(path: Path) -> np.ndarray:
    fmt = file_format(path, LABEL_SUFFIXES, "labels_path")
    if fmt == "npy":
        return load_npy(path, "labels array")
    if fmt == "pt":
        return _to_numpy(load_pt(path), str(path), "labels")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable text file of labels ({first_line(exc)})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    labels = np.asarray([line.strip() for line in lines], dtype=str)
    try:
        return labels.astype(np.int64)
    except ValueError:
        return labels


def as_inputs(x: np.ndarray, where: str, key: str = "x") -> np.ndarray:
    """float32 ``[N, F]`` inputs; DataError for another shape, a non-numeric dtype or non-finite values."""
    if x.ndim != 2:
        raise DataError(f"{where}: '{key}' has shape {list(x.shape)}; expected [N, F], one row per example")
    if x.dtype.kind not in "fiub":
        raise DataError(f"{where}: '{key}' has dtype {x.dtype}; expected numbers")
    check_finite(x.astype(np.float64, copy=False), where)
    x32 = x.astype(np.float32)
    check_finite(x32, where)  # a value beyond float32's range
    return x32


def _read_arrays(path: Path, fmt: str, labels_path: Path | None) -> dict[str, Any]:
    where = str(path)
    if fmt == "npz":
        arrays: dict[str, Any] = load_npz(path)
    elif fmt == "npy":
        arrays = {"x": load_npy(path, "x array")}
    else:
        loaded = load_pt(path)
        if isinstance(loaded, dict):
            missing = [k for k in ("x", "y") if k not in loaded]
            if missing:
                raise DataError(
                    f"{where}: a .pt dict needs keys 'x' and 'y'; it has {', '.join(map(str, loaded))}"
                )
            arrays = {k: loaded[k] for k in KEYS if k in loaded}
        else:
            arrays = {"x": loaded}
        arrays = {
            k: (list(v) if k == "class_names" and isinstance(v, (list, tuple)) else _to_numpy(v, where, k))
            for k, v in arrays.items()
        }
    if "y" in arrays and labels_path is not None:
        raise ConfigError(
            f"data.labels_path is for an .npy file or a bare .pt tensor; {path} holds its labels in 'y'"
        )
    if "y" not in arrays:
        if labels_path is None:
            raise ConfigError(
                f"data.labels_path is required: {path} holds the inputs only; give their labels "
                f"(.npy, .pt or .txt, one per row)"
            )
        arrays["y"] = load_labels(labels_path)
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{where}: a test set needs both 'x_test' and 'y_test'")
    return arrays


@functools.lru_cache(maxsize=4)
def _read_features_cached(signature, labels_signature) -> OwnArrays:
    path = Path(signature[0])
    where = str(path)
    fmt = file_format(path, SUFFIXES, "path")
    labels_path = None if labels_signature is None else Path(labels_signature[0])
    arrays = _read_arrays(path, fmt, labels_path)
    x = as_inputs(np.asarray(arrays["x"]), where)
    y = np.asarray(arrays["y"])
    check_lengths(x, y, where, "x")
    x_test = y_test = None
    if "x_test" in arrays:
        x_test = as_inputs(np.asarray(arrays["x_test"]), where, "x_test")
        y_test = np.asarray(arrays["y_test"])
        check_lengths(x_test, y_test, where, "x_test")
        if x_test.shape[1] != x.shape[1]:
            raise DataError(f"{where}: x_test has {x_test.shape[1]} features but x has {x.shape[1]}")
    if "class_names" in arrays:
        names = np.asarray(arrays["class_names"])
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(f"{where}: 'class_names' must be a 1-D array of strings")
        class_names = tuple(str(n) for n in names.astype(str).tolist())
        codes = check_coded_labels(y, len(class_names), where)
        test_codes = None if y_test is None else check_coded_labels(y_test, len(class_names), where, "y_test")
        order = "class_names from the file (label i is class_names[i])"
    else:
        codes, test_codes, class_names = encode_labels(y, y_test, where)
        order = "sorted distinct labels (numbers ascending, strings alphabetically)"
    extra = {
        "features": {"n_inputs": int(x.shape[1]), "format": fmt},
        "labels_provenance": None if labels_signature is None else file_provenance(labels_signature),
    }
    return OwnArrays(
        x=x,
        y=codes,
        x_test=x_test,
        y_test=test_codes,
        class_names=class_names,
        label_order=order,
        provenance=file_provenance(signature),
        test_provenance=None,
        extra=extra,
        non_integer_labels=has_non_integer_numbers(y)
        or (y_test is not None and has_non_integer_numbers(y_test)),
    )


def read_features(cfg) -> tuple[OwnArrays, SplitSettings, str]:
    """The file ``cfg`` names, parsed (cached per file signature), and its split settings."""
    path = required_path(cfg, "path", "the .npz, .npy or .pt file of feature vectors (data.path=emb.npz)")
    file_format(path, SUFFIXES, "path")
    labels_path = optional_path(cfg, "labels_path")
    if labels_path is not None:
        file_format(labels_path, LABEL_SUFFIXES, "labels_path")
    typed_field(cfg, "standardize", bool, "data")
    max_classes = max_classes_setting(cfg)
    settings = split_settings(cfg)
    signature = file_signature(path)
    labels_signature = None if labels_path is None else file_signature(labels_path, "labels file")
    arrays = _read_features_cached(signature, labels_signature)
    check_labels_are_classes(arrays, max_classes, str(path), "the labels")
    return arrays, settings, str(path)


register_source(
    "features",
    "your own feature vectors or embeddings (.npz, .npy or .pt)",
    "vector",
    read_features,
    lambda cfg: {"standardize": bool(cfg.standardize)},
)
