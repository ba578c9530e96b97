"""Sanity flags: results that are recorded as ok but are absurd, computed from a run record alone.

A run can finish without diverging and still be meaningless: its probabilities degenerate (temperature
scaling hit its cap, or the NLL is far worse than a uniform guess), its temperature unidentified (a validation
split without a single error drives the fit to its floor), its training loss never went down, or it
took one optimiser step per epoch (so ``epochs=N`` trained N steps). :func:`sanity_flags` finds these from what
every record holds (``metrics.json``'s test and calibration sections, ``history.csv``'s training loss, the
training split's size and the config's batch size), so records made before this module get them too. The
reports list them per cell (notes and answer); ``focalbench run`` prints them under the run's table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

T_MIN, T_MAX = 0.05, 20.0  # temperature scaling's search range (focalbench.training.metrics)
NLL_FACTOR = 2.0  # a test NLL above this many times log C (a uniform guess) is far above it


@dataclass(frozen=True)
class Flag:
    """One absurdity of one run: a short name, the sentence, and whether it makes the probabilities
    degenerate (NLL, ECE and the fitted temperature then mean little)."""

    kind: str
    text: str
    degenerate: bool = False


def _float(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def sanity_flags(
    metrics: dict, history: list[dict], batch_size: int | None, loss_changes: bool = False
) -> list[Flag]:
    """The flags of one ok run: ``metrics`` its metrics.json, ``history`` its history.csv rows (dicts of
    strings), ``batch_size`` its config's (None: unknown, that flag is not checked). ``loss_changes``: the
    loss itself changes during training (deferred re-weighting, ``alpha_start_epoch`` > 0), so a training
    loss that ends higher than it started is expected and not flagged."""
    flags = []
    cal = metrics.get("calibration") or {}
    t = _float(cal.get("temperature"))
    at_bound = t is not None and (
        cal.get("temperature_at_bound")
        or math.isclose(t, T_MAX, rel_tol=1e-4)
        or math.isclose(t, T_MIN, rel_tol=1e-4)
    )
    val = metrics.get("val") or {}
    if at_bound and t < 1 and _float(val.get("accuracy")) == 100.0:
        # No validation error: the NLL falls without bound as T -> 0, so the fit runs to its floor whatever
        # the model. The raw probabilities are not to blame; the scaled ones mean nothing.
        flags.append(
            Flag(
                "temperature_unidentified",
                f"its validation split ({val.get('n', '?')} examples) holds no error, so the temperature fit "
                f"sharpens to its floor (T = {t:.3g}): NLL and ECE after temperature scaling mean nothing here; "
                "read the raw ones, or give the validation split more examples (data.val_fraction)",
            )
        )
    elif at_bound:
        cap = "cap" if t > 1 else "floor"
        flags.append(
            Flag(
                "temperature_at_bound",
                f"the fitted temperature sits at its {cap} (T = {t:.3g}, search range {T_MIN:g}-{T_MAX:g}), so "
                "temperature scaling could not fix the probabilities",
                degenerate=True,
            )
        )
    test = metrics.get("test") or {}
    nll = _float(test.get("nll"))
    n_classes = len(test.get("confusion_matrix") or (metrics.get("data") or {}).get("train_counts") or [])
    if nll is not None and n_classes >= 2 and nll > NLL_FACTOR * math.log(n_classes):
        flags.append(
            Flag(
                "nll_far_above_log_c",
                f"the test NLL {nll:.3g} is far above log C = {math.log(n_classes):.3g} (a uniform guess): "
                "confidently wrong probabilities",
                degenerate=True,
            )
        )
    losses = [x for r in history if (x := _float(r.get("train_loss"))) is not None]
    if not loss_changes and len(losses) >= 2 and losses[-1] >= losses[0]:
        flags.append(
            Flag(
                "loss_not_decreasing",
                f"the training loss did not decrease ({losses[0]:.4g} at the first epoch, {losses[-1]:.4g} at "
                f"the last of {len(losses)})",
            )
        )
    n_train = (metrics.get("data") or {}).get("n_train")
    if batch_size and isinstance(n_train, int) and 0 < n_train <= batch_size:
        flags.append(
            Flag(
                "one_step_per_epoch",
                f"one optimiser step per epoch ({n_train} training examples, batch_size={batch_size}): "
                f"epochs=N trains N steps; lower batch_size",
            )
        )
    return flags


def history(run_dir) -> list[dict]:
    """A run's ``history.csv`` rows (empty when it has none). Reads with the csv module only: ``focalbench run``
    prints the flags, and a run must not import pandas or scipy (tests/test_startup.py)."""
    import csv
    from pathlib import Path

    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def run_flags(run) -> list[Flag]:
    """:func:`sanity_flags` of a report's :class:`~focalbench.reports.aggregate.RunRecord` (ok runs only)."""
    if not run.ok or not run.metrics:
        return []
    batch = run.config.get("batch_size")
    changes = bool(run.config.get("alpha_start_epoch") or 0)
    return sanity_flags(run.metrics, history(run.run_dir), int(batch) if batch else None, changes)


def flag_sentence(flags: list[Flag]) -> str:
    """The flags of a run or cell in one clause: the degenerate probabilities first."""
    bad = [f.text for f in flags if f.degenerate]
    other = [f.text for f in flags if not f.degenerate]
    parts = [f"its probabilities are degenerate: {'; '.join(bad)}"] if bad else []
    return "; ".join(parts + other)


def cell_flag_lines(report) -> list[str]:
    """Per cell with a flag: the flags, each with the seeds it holds for (the notes and the answer)."""
    lines = []
    for cell in report.cells:
        by_kind: dict[str, tuple[Flag, list[int]]] = {}
        for run in cell.runs:
            for flag in run_flags(run):
                by_kind.setdefault(flag.kind, (flag, []))[1].append(run.seed)
        if not by_kind:
            continue
        texts = []
        for flag, seeds in by_kind.values():
            which = f"seed {seeds[0]}"
            if len(seeds) > 1:
                which = f"seeds {','.join(map(str, sorted(seeds)))}; the numbers of seed {seeds[0]}"
            texts.append(Flag(flag.kind, f"{flag.text} ({which})", flag.degenerate))
        lines.append(f"'{cell.label}': {flag_sentence(texts)}")
    return lines
