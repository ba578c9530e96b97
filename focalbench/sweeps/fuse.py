"""Which cells of a sweep train together as one fused model (:mod:`focalbench.training.fused`), and running them.

Cells fuse when they share everything that shapes the computation: the data (dataset, imbalance, data seed,
augmentation), the architecture, epochs, batch size, the optimizer and its settings, the schedule, precision,
device and threads. They may differ in the seed, the loss (any registered loss), gamma, alpha and
alpha_start_epoch (``MEMBER_KEYS``). The fusion key is therefore the run's semantic config without those keys;
with your own data's ``data.resplit`` each seed carves its own split, so there the seed stays in the key.

Not fusable (they train unfused, as before): ``compile=true``; ``precision=fp16`` (its gradient scaler skips a
step for the whole group when one member overflows); a model with dropout (dropout masks come from the global
generator, which K members cannot share); a model the fused layers do not cover (found at run time, see
``training.fused.NotFusable``).

Default (``fuse=None``): fuse where it is faster. On CUDA that is every fusable model; on a CPU only the
models in ``CPU_FUSED_MODELS``: there, grouped convolutions are slower than K separate convolutions, so a fused
cnn or resnet32 group trains slower than its members one by one (``bench/bench_fused.py`` measures both).
``fuse=True`` (``--fuse``) fuses every fusable group, ``fuse=False`` (``--no-fuse``) none. Group size is capped
by ``max_fuse`` (``--max-fuse``), by default from memory (:func:`default_max_fuse`).

Every launcher trains groups: the in-process loop runs them one after another; Hydra's launchers (joblib,
submitit, SLURM) and the Ray launcher get one job per group (:mod:`focalbench.sweeps.launch`). With ``workers``
> 1 (``--jobs N``) and no ``--max-fuse``, a bucket of cells is split so that every worker has a group to train
(``--jobs 2`` with 12 fusable cells: two groups of 6).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from omegaconf import DictConfig

from focalbench.config import cell_label
from focalbench.identity import identity_config

MEMBER_KEYS = ("seed", "loss", "gamma", "alpha", "alpha_start_epoch")
# Models fused by default on a CPU (bench/bench_fused.py: mlp trains about 2x faster fused on 2 cores; cnn and
# resnet32 about 0.7x, so they are fused by default only on CUDA).
CPU_FUSED_MODELS = ("mlp",)
MAX_FUSE_CAP = 32  # a group's records appear when the whole group finishes: keep resumption granular
MEMORY_SHARE = {"cuda": 0.5, "cpu": 0.25}  # of the free device memory a group may plan to use


@dataclass
class FuseGroup:
    """Cells that run together: fused when ``fused`` (two or more members), else one run alone."""

    cells: list  # focalbench.sweeps.plan.Cell
    fused: bool
    reason: str = ""  # why a single cell runs unfused (empty when nothing to say)
    member_labels: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """A short label for the group's progress bar: what varies between its members, with their seeds
        (``fused x12: gamma=0 (seeds 0,1,2), gamma=1 (seeds 0,1,2), ...``)."""
        if not self.fused:
            return self.member_labels[0]
        labels = [cell_label(c.cfg).split() for c in self.cells]
        common = set(labels[0]).intersection(*map(set, labels[1:]))
        seeds: dict[str, list[str]] = {}
        for tokens, cell in zip(labels, self.cells, strict=True):
            key = " ".join(t for t in tokens if t not in common) or " ".join(tokens)
            seeds.setdefault(key, []).append(str(int(cell.cfg.seed)))
        parts = [f"{key} (seed{'s' if len(s) > 1 else ''} {','.join(s)})" for key, s in seeds.items()]
        text = f"fused x{len(self.cells)}: " + ", ".join(parts)
        return text if len(text) <= 100 else text[:99] + "…"


def fusion_key(cfg: DictConfig) -> str:
    """Everything of ``cfg`` that shapes the computation: its identity config without ``MEMBER_KEYS``, plus the
    thread count (which changes float sums)."""
    semantic = identity_config(cfg)
    # data.resplit: each seed trains on its own split, so seeds share no data and must not fuse
    resplit = isinstance(semantic.get("data"), dict) and semantic["data"].get("resplit") is True
    for key in MEMBER_KEYS:
        if not (key == "seed" and resplit):
            semantic.pop(key, None)
    semantic["threads"] = int(cfg.threads)
    return json.dumps(semantic, sort_keys=True, separators=(",", ":"), default=str)


def not_fusable_reason(cfg: DictConfig) -> str | None:
    """Why ``cfg`` cannot train in a fused group, or None."""
    if cfg.compile:
        return "compile=true"
    if cfg.precision == "fp16":
        return "precision=fp16 (its gradient scaler would skip steps for the whole group)"
    if float(cfg.model.get("dropout", 0) or 0) > 0:
        return "dropout (its masks come from the global generator)"
    return None


def device_type(cfg: DictConfig) -> str:
    if cfg.device != "auto":
        return str(cfg.device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def fused_by_default(cfg: DictConfig) -> bool:
    """Whether fusion is faster for ``cfg``'s model on its device (see the module docstring)."""
    return device_type(cfg) == "cuda" or str(cfg.model.name) in CPU_FUSED_MODELS


def plan_groups(
    cells: list, fuse: bool | None = None, max_fuse: int | None = None, workers: int = 1
) -> list[FuseGroup]:
    """Split ``cells`` (in grid order) into groups: cells with the same fusion key, fusable and (with ``fuse``
    None) fused by default, form groups of at most ``max_fuse`` (default: :func:`default_max_fuse`); every
    other cell is a group of one. Groups appear in the order of their first cell.

    ``workers``: how many groups can train at once (``--jobs``). Without ``max_fuse``, while there are fewer
    groups than workers, the bucket with the largest groups is split once more, into near-equal groups, so
    that no worker is left idle; an explicit ``max_fuse`` is the user's choice and is kept as given."""
    if max_fuse is not None and max_fuse < 1:
        from focalbench.errors import ConfigError

        raise ConfigError(f"--max-fuse must be at least 1, got {max_fuse}")
    buckets: dict[str, list] = {}
    order: list[tuple[str, object]] = []
    for cell in cells:
        reason = None
        if fuse is False:
            reason = "--no-fuse"
        else:
            reason = not_fusable_reason(cell.cfg)
            if reason is None and fuse is None and not fused_by_default(cell.cfg):
                reason = f"model={cell.cfg.model.name} on the CPU trains faster unfused (--fuse to fuse it)"
        if reason is not None:
            order.append(("single", FuseGroup([cell], False, reason, [_member_label(cell)])))
            continue
        key = fusion_key(cell.cfg)
        if key not in buckets:
            buckets[key] = []
            order.append(("bucket", key))
        buckets[key].append(cell)
    chunks = {
        key: _chunks(bucket, max_fuse or default_max_fuse(bucket[0].cfg)) for key, bucket in buckets.items()
    }
    if max_fuse is None:
        _spread_over_workers(chunks, workers - sum(kind == "single" for kind, _ in order))
    groups: list[FuseGroup] = []
    for kind, item in order:
        if kind == "single":
            groups.append(item)
            continue
        bucket = buckets[item]
        for chunk in chunks[item]:
            labels = [_member_label(c) for c in chunk]
            if len(chunk) == 1:
                reason = "nothing to fuse with" if len(bucket) == 1 else ""
                groups.append(FuseGroup(chunk, False, reason, labels))
            else:
                groups.append(FuseGroup(chunk, True, "", labels))
    return groups


def _chunks(bucket: list, cap: int) -> list[list]:
    """``bucket`` in grid order, cut into groups of ``cap`` (the last one smaller)."""
    return [bucket[start : start + cap] for start in range(0, len(bucket), cap)]


def _spread_over_workers(chunks: dict[str, list[list]], free_workers: int) -> None:
    """Split buckets (``chunks``: fusion key -> its groups, changed in place) until there are at least
    ``free_workers`` groups or every group is a single cell: each step re-cuts the bucket whose largest group
    is largest into one more group, of near-equal sizes (12 cells for 2 workers: 6 and 6, not 11 and 1)."""
    while sum(len(c) for c in chunks.values()) < free_workers:
        key = max(chunks, key=lambda k: max(len(g) for g in chunks[k]), default=None)
        if key is None or max(len(g) for g in chunks[key]) < 2:
            return
        cells = [cell for group in chunks[key] for cell in group]
        n = len(chunks[key]) + 1
        size, extra = divmod(len(cells), n)
        cuts = [size * i + min(i, extra) for i in range(n + 1)]
        chunks[key] = [cells[cuts[i] : cuts[i + 1]] for i in range(n)]


def _member_label(cell) -> str:
    return f"{cell_label(cell.cfg)} seed={int(cell.cfg.seed)}"


# ----------------------------------------------------------------------------------------------------------
# The default group size, from memory
# ----------------------------------------------------------------------------------------------------------


def member_bytes(cfg: DictConfig) -> int | None:
    """An estimate of one member's training memory: parameters, gradients, momentum and a best-val copy
    (4 copies), plus the activations of one batch kept for the backward pass (every module's output, twice:
    forward values and their gradients), in the config's precision. None when the input shape is unknown."""
    import torch

    from focalbench.models import build_model
    from focalbench.registry import DATASETS

    kind = DATASETS.get(str(cfg.data.name)).meta.get("kind")
    if kind == "vector" and cfg.data.get("n_features") is not None:
        shape: tuple[int, ...] = (int(cfg.data.n_features),)
    elif kind == "image":
        shape = (3, 32, 32)
    else:
        return None
    model = build_model(cfg.model, shape, int(cfg.data.n_classes))
    params = sum(p.numel() for p in model.parameters())
    elements = 0

    def count(_module, _inputs, output) -> None:
        nonlocal elements
        if isinstance(output, torch.Tensor):
            elements += output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *shape))
    finally:
        for h in hooks:
            h.remove()
    act_bytes = (
        2
        if cfg.precision in ("bf16", "fp16") or (cfg.precision == "auto" and device_type(cfg) == "cuda")
        else 4
    )
    return 4 * 4 * params + 2 * act_bytes * elements * int(cfg.batch_size)


def free_memory_bytes(device: str) -> int | None:
    """Free memory of the device a group trains on: CUDA's free memory, or the host's available memory."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_max_fuse(cfg: DictConfig) -> int:
    """How many members fit: a share (``MEMORY_SHARE``) of the free memory over :func:`member_bytes`, at
    most ``MAX_FUSE_CAP`` and at least 1."""
    device = device_type(cfg)
    per_member = member_bytes(cfg)
    free = free_memory_bytes(device)
    if not per_member or not free:
        return MAX_FUSE_CAP
    return max(1, min(MAX_FUSE_CAP, int(free * MEMORY_SHARE.get(device, 0.25) // per_member)))


# ----------------------------------------------------------------------------------------------------------
# Showing and running the groups
# ----------------------------------------------------------------------------------------------------------


def describe_groups(groups: list[FuseGroup]) -> list[str]:
    """One block of lines per group, for ``focalbench sweep --dry-run``."""
    lines = []
    fused = [g for g in groups if g.fused]
    single = [g for g in groups if not g.fused]
    lines.append(
        f"{sum(len(g.cells) for g in groups)} runs: {len(fused)} fused group(s) of "
        f"{', '.join(str(len(g.cells)) for g in fused) or '-'} runs, {len(single)} run(s) alone"
    )
    for i, g in enumerate(groups, 1):
        if g.fused:
            lines.append(f"  group {i}: {len(g.cells)} runs fused, one model with a member dimension")
            lines += [
                f"    - {label}  ({c.run_id})" for label, c in zip(g.member_labels, g.cells, strict=True)
            ]
        else:
            why = f"  [{g.reason}]" if g.reason else ""
            lines.append(f"  group {i}: alone: {g.member_labels[0]}  ({g.cells[0].run_id}){why}")
    return lines


def run_groups(groups: list[FuseGroup], prepare, progress=None, notify=None) -> list:
    """Run every group in order: a fused group through ``training.fused.execute_group``, a single cell through
    ``runner.execute_run``; return every cell's ``RunOutcome`` ("locked" for a run another process holds).
    ``prepare(cell) -> cfg`` gives the config a cell runs with (results folder, jobs, quiet). ``progress``, if
    given, has ``add_group(label, epochs) -> task`` and ``update(task, epochs_done)``: one bar per fused group.
    ``notify`` receives the one-line messages about locks."""
    from focalbench.training.fused import execute_group
    from focalbench.training.runner import execute_run

    outcomes = []
    for group in groups:
        cfgs = [prepare(c) for c in group.cells]
        if not group.fused:
            outcomes.append(execute_run(cfgs[0], quiet=True, notify=notify))
            continue
        task = progress.add_group(group.label, int(cfgs[0].epochs)) if progress is not None else None
        on_epoch = (lambda e, t=task: progress.update(t, e)) if progress is not None else None
        outcomes += execute_group(cfgs, on_epoch=on_epoch, notify=notify)
        if progress is not None:
            progress.update(task, int(cfgs[0].epochs))
    return outcomes
