"""A run's identity: which config values make two runs the same run, and the id that names its record.

Two configs get the same run id exactly when they compute the same run, so that a record found under that id
can be reused instead of training again. The id is 12 hex digits of the SHA-256 of canonical JSON of

- :data:`RECORD_VERSION`, the version of what a run computes and records. **Raise it whenever a change
  alters what a run computes** (the data, the model, the loss, the training, the metrics or the record's
  format): every id changes and every old record is trained again instead of being reused;
- the resolved config, with

  - every ``auto`` value resolved on this machine: ``data.resplit=auto`` becomes true or false as the data
    decides it (your own data: see :mod:`focalbench.data.own`), ``device=auto`` becomes ``cpu`` or ``cuda``
    exactly as the runner picks it, and ``precision=auto`` the precision the runner uses on that device (a
    CPU fp32 record is never reused for a GPU bf16 run);
  - every number normalised: an integral float is the integer (``alpha=1`` and ``alpha=1.0``, ``gamma=2``
    and ``gamma=2.0`` are one value), element-wise in lists;
  - unset keys (value ``null``) left out, as if absent: a new optional key does not change existing ids;
  - keys added after records existed left out at the value that computes what runs computed before them
    (:data:`LATER_KEYS`), so a new key at its default does not change existing ids either;
  - the keys that cannot change the result left out: :data:`EXCLUDED_KEYS`, each with the reason;
  - every data key that names input files (``data.path``, ``data.test_path``, ``data.labels_path``: any data
    key ending in ``path``) replaced by a digest of what it names: a file's sha256, a folder's sorted relative
    names and sizes. A file changed in place is new data and gets new runs; the same file moved is not.

This module does not import torch: resolving ``device=auto`` does, lazily, and only then.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

# The version of what a run computes and of its record; part of every run id, and written into metrics.json
# as `record_version`. A record of another version is never reused. Raise it whenever a change alters what a
# run computes (see the Changelog at the end of README.md).
RECORD_VERSION = 3

# The keys that cannot change what a run computes, left out of the run id (dotted for nested keys), each
# with the reason. This is the one list: the run id, the reports' cell grouping and the README use it.
EXCLUDED_KEYS: dict[str, str] = {
    "results_dir": "where the record is written, not what it holds",
    "jobs": "how many runs share the machine; it changes only the default thread count (see threads)",
    "threads": "torch's intra-op threads: identical results for vector data (one thread whatever the "
    "setting); on image data the thread count changes the order of float sums, so the last bits can "
    "differ, but not the result's meaning. Left out on purpose, so that --jobs and launchers share "
    "records; pin threads=N to compare records bit for bit",
    "name": "the sweep's folder name",
    "hydra": "Hydra's own settings (launcher, sweeper, output folders)",
    "quiet": "where progress is shown (terminal or train.log)",
    "save_model": "whether the final weights are also written (model.pt); the run computes the same",
    "suite": "a reproduction suite's grid and claims (configs/experiment); it selects runs, does not change one",
    "logger": "which trackers (MLflow, TensorBoard, wandb) a run is also logged to, after its record is "
    "written; the record is the same whatever they are",
    "log_every": "steps between progress updates; divergence is tracked per step on the device and "
    "reported at its exact epoch and step whatever the interval",
    "eval.batch_size": "how many examples are evaluated at once; the model is in eval mode, so each "
    "example's prediction does not depend on its batch",
    "data.root": "where the CIFAR archives are read from, not which data (the files are checked)",
    "data.download": "whether missing archives may be fetched, not which data",
    "data.max_classes": "how many classes your own data's labels may have before they are refused as "
    "continuous; a run that trains computes the same whatever it is",
    "data.missing_as_category": "whether a table's missing categorical values are refused or kept as their "
    "own category, as they always were; a run that trains computes the same whatever it is",
}

# Keys added to the config after records existed, with the value at which a run computes exactly what it
# computed before the key: at that value the key is left out of the run id (and of the reports' cells), so
# existing records keep their ids. Another value is a different run, with its own id.
LATER_KEYS: dict[str, object] = {
    "loss.mean": "weights",  # reduction "mean" divides by sum_i alpha_{y_i}: the rule before loss.mean existed
    "data.drop": [],  # data=table: no column dropped by name (text columns used to be left out without one)
    "data.resplit": False,  # your own data: one split for every training seed (auto resolves before this)
    "data.flip": True,  # data=image_folder: flipped at random, as it was (CIFAR has no such key: always flips)
}

# The losses with a gamma (the loss registry's ``uses_gamma``; tests/test_grids.py keeps the two in step),
# here so that ids and labels need no loss code. A loss without gamma accepts gamma=0 (a grid such as
# ``loss=ce,logit_adjusted gamma=0,2``) and trains exactly as without it, so its id hashes gamma as that
# loss's preset holds it: 0 for CE (configs/loss/ce.yaml), null for the others.
GAMMA_LOSSES = frozenset({"focal", "sigmoid_focal"})
GAMMA_OF_GAMMA_FREE_LOSS: dict[str, float | None] = {"ce": 0.0}

# The excluded keys as the reports use them: top-level keys, and keys of the data group.
NON_SEMANTIC_KEYS = tuple(k for k in EXCLUDED_KEYS if "." not in k)
NON_SEMANTIC_DATA_KEYS = tuple(k.split(".", 1)[1] for k in EXCLUDED_KEYS if k.startswith("data."))


# ----------------------------------------------------------------------------------------------------------
# Resolving "auto": the one place that decides the device and the precision (the runner uses these too)
# ----------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_device_name(name: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is available, else ``cpu``; any other name as given."""
    name = str(name)
    if name == "auto":
        return "cuda" if cuda_available() else "cpu"
    return name


def resolve_device(name: str):
    """The torch device a run trains on; ConfigError when ``device=cuda`` has no CUDA device."""
    import torch

    resolved = resolve_device_name(name)
    if resolved == "cuda" and not cuda_available():
        from focalbench.errors import ConfigError

        raise ConfigError("device=cuda but no CUDA device is available; use device=auto or device=cpu")
    return torch.device(resolved)


def resolve_precision(precision: str, device: Any) -> str:
    """The precision a run trains in. ``fp32``, ``bf16`` and ``fp16`` stand as given; ``auto`` is ``bf16``
    (autocast) on CUDA and ``fp32`` on the CPU.

    Not bf16 on a CPU, even one with native bf16 (where it trains the conv nets 2-2.5x faster): the paired
    equivalence tests fixed in advance found bf16 within +-1 point of fp32 for CE (``cifar10_lt_cpu_precision``,
    5 seeds) but not for focal loss (``article_precision``: gamma = 2, 0.88 points of balanced accuracy below
    fp32, 90% CI [0.74, 1.02], 3 seeds), and the suite's rule was to restrict ``auto`` then. One precision for
    every loss keeps a comparison between losses free of a precision confound, so ``auto`` is fp32 for all of
    them on the CPU; ``precision=bf16`` asks for bf16 (on a CPU without native bf16 its convolutions
    run as fp32 products rounded to bf16, and the run's record says so).

    ``device`` is a torch device or a device name.
    """
    if precision != "auto":
        return str(precision)
    device_type = getattr(device, "type", None) or str(device).split(":", 1)[0]
    return "bf16" if device_type == "cuda" else "fp32"


# ----------------------------------------------------------------------------------------------------------
# The identity config and the run id
# ----------------------------------------------------------------------------------------------------------


def normalise(value: Any) -> Any:
    """Numbers to one spelling (an integral float is the int; bools stay bools) and unset (None) mapping
    entries dropped, recursively."""
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _drop(tree: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.get(key)
        if not isinstance(tree, dict):
            return
    tree.pop(leaf, None)


def drop_later_keys_at_default(tree: dict) -> dict:
    """``tree`` (a nested config dict, changed in place) without the :data:`LATER_KEYS` that hold the value
    runs had before those keys existed."""
    for dotted, default in LATER_KEYS.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == default:
            del node[leaf]
    return tree


def identity_config(cfg: Any) -> dict:
    """What the run id hashes: the resolved config with ``auto`` values resolved, numbers normalised and the
    excluded keys, and the later keys at their old value, left out. ``cfg`` is a DictConfig or a plain dict."""
    from omegaconf import OmegaConf

    tree = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else json_copy(cfg)
    resolve_data_auto(tree)  # first: reading the data needs every data key, the excluded ones too
    for key in EXCLUDED_KEYS:
        _drop(tree, key)
    drop_later_keys_at_default(tree)
    gamma_as_its_loss_holds_it(tree)
    if "device" in tree:
        tree["device"] = resolve_device_name(tree["device"])
    if "precision" in tree:
        tree["precision"] = resolve_precision(tree["precision"], tree.get("device", "cpu"))
    data = tree.get("data")
    if isinstance(data, dict):
        for key in [k for k in data if k.endswith("path") and isinstance(data[k], str)]:
            data[key] = {"digest": content_digest(data[key])}
    return normalise(tree)


def gamma_as_its_loss_holds_it(tree: dict) -> None:
    """``gamma`` = 0 of a loss without gamma (changed in place) as that loss's preset holds it
    (:data:`GAMMA_OF_GAMMA_FREE_LOSS`): ``loss=logit_adjusted gamma=0`` is the run ``loss=logit_adjusted``."""
    loss = tree.get("loss")
    name = loss.get("name") if isinstance(loss, dict) else None
    if name is None or name in GAMMA_LOSSES or "gamma" not in tree:
        return
    if tree["gamma"] is not None and float(tree["gamma"]) == 0.0:
        tree["gamma"] = GAMMA_OF_GAMMA_FREE_LOSS.get(name)


def resolve_data_auto(tree: dict) -> None:
    """``data.resplit=auto`` in ``tree`` (changed in place) replaced by true or false for its data; left as
    ``auto`` when the data cannot be read (validation reports why). Imports the data sources, only then."""
    data = tree.get("data")
    if not isinstance(data, dict) or data.get("resplit") != "auto":
        return
    from focalbench.data import resolved_resplit
    from focalbench.errors import FocalbenchError

    try:
        value = resolved_resplit(data)
    except (FocalbenchError, OSError):
        return
    if value is not None:
        data["resplit"] = value


def content_digest(path: str) -> str:
    """sha256 of a file's bytes, or of a folder's sorted relative file names and sizes (name<TAB>size<LF>),
    the same digests a run's provenance records; the path itself when nothing is there (validation reports
    that). Cached per path, size and modification time."""
    p = Path(path).expanduser().resolve()
    try:
        st = p.stat()
    except OSError:
        return f"missing:{p}"
    return _digest_cached(str(p), p.is_dir(), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=256)
def _digest_cached(path: str, is_dir: bool, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    if not is_dir:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    root = Path(path)
    entries = sorted(
        (str(f.relative_to(root)), f.stat().st_size)
        for f in root.rglob("*")
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(root).parts)
    )
    h.update("".join(f"{name}\t{size}\n" for name, size in entries).encode())
    return h.hexdigest()


def json_copy(tree: dict) -> dict:
    return json.loads(json.dumps(tree, default=str))


def run_id(cfg: Any) -> str:
    """12 hex digits of the SHA-256 of the record version and the identity config, in canonical JSON: the
    name of the run's folder."""
    payload = {"record_version": RECORD_VERSION, "config": identity_config(cfg)}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
