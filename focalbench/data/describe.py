"""A JSON-serialisable summary of a task, for ``focalbench data info`` and the run record."""

from __future__ import annotations

from focalbench.data.longtail import class_counts, shot_groups
from focalbench.data.split import SplitData


def describe(data: SplitData, many_threshold: int = 100, few_threshold: int = 20) -> dict:
    """Per-class table, split sizes, achieved imbalance and provenance of ``data``.

    Returns:
        ``{"dataset", "kind", "n_classes", "input_shape", "imbalance", "profile", "achieved_imbalance",
        "n_train", "n_val", "n_test", "thresholds", "groups", "root", "official_copy", "data_seed",
        "classes"}``, where ``achieved_imbalance = max(longtail_counts) / min(longtail_counts)``, ``groups``
        counts classes per shot group, and ``classes`` is a list of ``{"index", "name", "longtail", "train",
        "val", "test", "group"}`` with the group from the training count (many: > many_threshold,
        few: < few_threshold, else medium).

        Your own data (``data=table|features|image_folder``) adds ``measured_imbalance`` (largest over smallest
        training-split count), ``test`` (given or carved), ``split`` (whether the split follows the training
        seed, ``data.resplit``), ``label_order``, ``provenance``, and, for vectors,
        ``inputs`` (what the inputs are made of) and ``features`` (:attr:`SplitData.feature_summary`: per
        input, mean, std, min and max over the raw training split).
    """
    val_counts = class_counts(data.val_y, data.n_classes)
    test_counts = class_counts(data.test_y, data.n_classes)
    groups = shot_groups(data.train_counts, many_threshold, few_threshold)
    classes = [
        {
            "index": c,
            "name": data.class_names[c],
            "longtail": data.longtail_counts[c],
            "train": data.train_counts[c],
            "val": val_counts[c],
            "test": test_counts[c],
            "group": groups[c],
        }
        for c in range(data.n_classes)
    ]
    smallest = min(data.longtail_counts)
    own = {
        key: data.info[key]
        for key in (
            "measured_imbalance",
            "test",
            "label_order",
            "provenance",
            "test_provenance",
            "augmentation",
        )
        if key in data.info
    }
    if "resplit" in data.info:
        own["split"] = split_sentence(data.info)
    if "features" in data.info:
        own["inputs"] = data.info["features"]
    if data.feature_summary:
        own["features"] = data.feature_summary
    return {
        "dataset": data.name,
        "kind": data.kind,
        "n_classes": data.n_classes,
        "input_shape": list(data.input_shape),
        "imbalance": data.info.get("imbalance"),
        "profile": data.info.get("profile"),
        "achieved_imbalance": max(data.longtail_counts) / smallest if smallest > 0 else float("inf"),
        "n_train": int(data.train_y.numel()),
        "n_val": int(data.val_y.numel()),
        "n_test": int(data.test_y.numel()),
        "thresholds": {"many": many_threshold, "few": few_threshold},
        "groups": {g: groups.count(g) for g in ("many", "medium", "few")},
        "root": data.info.get("root"),
        "official_copy": data.info.get("official_copy"),
        "data_seed": data.info.get("data_seed"),
        "classes": classes,
        **own,
    }


def split_sentence(info: dict) -> str:
    """Whether your own data's split follows the training seed (``data.resplit``), in words."""
    seed = info.get("data_seed")
    if info.get("resplit"):
        return (
            f"one per training seed (data.resplit): seed i carves the split of data seed {seed}+i, so a "
            f"report's CIs cover the split too; shown: data seed {seed}"
        )
    why = "the test set is given" if info.get("test_fraction") is None else "data.resplit=false"
    return f"one for every training seed (data seed {seed}; {why}): CIs cover training seeds only"
