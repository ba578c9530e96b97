"""The training loop and the evaluation of a run, alone or as a member of a fused group.

One run = train ``cfg.epochs`` epochs of SGD on the training split, evaluating on the validation split after
every epoch, then evaluate the final model on the balanced test set. The model state with the best validation
balanced accuracy is kept aside and evaluated on the test set at the end, labelled "best-val epoch": the test
set never selects anything.

One loop trains a group of K >= 1 such runs (:func:`train_members`): the schedule, deferred re-weighting,
divergence tracking, per-class training statistics, progress events, evaluation (one :class:`Evaluator` per
member) and the assembly of each member's :class:`TrainResult` live there, once. How the members' numbers are
computed lives behind :class:`Members`: :class:`SingleModel` trains a run alone (K = 1: the plain model, no
member dimension; :func:`train`), ``focalbench.training.fused.FusedGroup`` trains K > 1 runs as one fused
model (``fused.train_group``).

Divergence: a member whose loss turns non-finite is recorded as diverged (:class:`Diverged`, with the epoch and
step); in a group it is frozen and the others go on, a run alone stops there (``train`` raises it).

Speed: the data already lives on the device (as in airbench), and a step does no host-device synchronisation.
Divergence is tracked on the device (the first non-finite step and the last finite loss) and read back only at
the progress interval (``cfg.log_every`` steps) and at the end of each epoch.
"""

from __future__ import annotations

import copy
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace

import torch

from focalbench.data import SplitData, iter_eval_batches, iter_train_batches
from focalbench.registry import LOSSES
from focalbench.training.bf16_conv import RoundedBf16Convolutions
from focalbench.training.class_stats import TrainClassStats, true_class_probability
from focalbench.training.metrics import (
    calibration_metrics,
    classification_metrics,
    fit_temperature,
    prior_shift_weights,
    reliability_bins,
)
from focalbench.training.optim import SGD
from focalbench.training.schedule import learning_rate

# What the loop reports while it runs; the runner turns events into a progress bar or log lines.
ProgressCallback = Callable[[dict], None]


class Diverged(Exception):
    """The training loss became non-finite; carries where it happened and the last finite values."""

    def __init__(self, epoch: int, step: int, last_finite_loss: float | None, history: list[dict]):
        self.epoch, self.step, self.last_finite_loss, self.history = epoch, step, last_finite_loss, history
        super().__init__(
            f"non-finite training loss at epoch {epoch}, step {step} (last finite loss {last_finite_loss})"
        )


@dataclass
class TrainResult:
    history: list[dict]
    final_test: dict
    final_val: dict | None
    best_val: dict | None  # {"epoch", "val_balanced_accuracy", "test": metrics}
    calibration: dict | None  # temperature fitted on val, NLL/ECE after scaling on test
    train_time_s: float
    images_seen: int
    alpha_start_epoch: int = 0  # the 0-based epoch from which alpha applied (0: from the start)
    class_history: list[dict] = field(default_factory=list)  # per epoch and class: TrainClassStats rows
    logits: dict = field(default_factory=dict)  # {"val"|"test": (logits, labels)}, final epoch, as scored
    # save_model=true: the final model's state dict (CPU tensors), taken before the best-val state is loaded
    final_state: dict | None = None
    extra: dict = field(default_factory=dict)


def make_criterion(cfg, train_counts: list[int], device: torch.device):
    """The training criterion ``(logits, target, alpha, reduction="mean") -> loss`` of ``cfg.loss.name``, from
    the registry.

    Every criterion computes in float32 (also under autocast); its "mean" divides the alpha-weighted sum by
    sum_i alpha_{y_i} or, with ``loss.mean=batch``, by N (the same when alpha is None), and
    ``reduction="none"`` gives the alpha-weighted per-example losses [N]. alpha is passed per step, so deferred
    re-weighting can switch it on.
    """
    return LOSSES.get(str(cfg.loss.name)).build(cfg, list(train_counts), device)


def takes_reduction(criterion) -> bool:
    """Whether a criterion accepts ``reduction="none"`` (every built-in one does; a user's loss written for the
    three-argument contract may not, and then its runs record no per-class loss shares)."""
    import inspect

    try:
        params = inspect.signature(criterion).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "reduction" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def probability_scale(cfg) -> float:
    """The factor s of the model's probabilities softmax(s * z). A normalised (cosine) classifier's logits are
    cosines in [-1, 1], and its loss trains softmax(s * cos) with the loss's scale s (LDAM: s = 30), so its
    probabilities, NLL and ECE are those of s * z; every other model's are those of z (s = 1). Predictions
    (the argmax) do not depend on s."""
    scale = cfg.loss.get("scale") if bool(cfg.model.get("norm_classifier", False)) else None
    return 1.0 if scale is None else float(scale)


def alpha_start(cfg) -> int:
    """The epoch (0-based) from which alpha applies: ``alpha_start_epoch`` as a whole epoch, or as a fraction
    of the epochs when it lies in (0, 1) (0.8 of 200 epochs is epoch 160, the LDAM-DRW recipe)."""
    start = float(cfg.get("alpha_start_epoch", 0) or 0)
    return round(start * int(cfg.epochs)) if 0 < start < 1 else int(start)


def autocast_factory(device: torch.device, precision: str) -> Callable[[], AbstractContextManager]:
    """The forward pass's autocast, decided once (a run asks for one context a step): a callable that returns
    a fresh context each time. bf16/fp16 where asked, a disabled autocast for fp32. bf16 on a CPU without
    native bf16 also computes its convolutions as fp32 products rounded to bf16 (what a native kernel
    computes, 10x faster than PyTorch's fallback there: ``focalbench.training.bf16_conv``)."""
    if precision == "fp32":
        return partial(torch.autocast, device_type=device.type, enabled=False)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if rounds_bf16_convolutions(device, precision):
        return partial(_autocast_with_rounded_convolutions, device.type, dtype)
    return partial(torch.autocast, device_type=device.type, dtype=dtype)


def autocast_context(device: torch.device, precision: str) -> AbstractContextManager:
    """One context of :func:`autocast_factory` (for a single use; a loop takes the factory)."""
    return autocast_factory(device, precision)()


def rounds_bf16_convolutions(device: torch.device, precision: str) -> bool:
    """True where bf16 convolutions run as :class:`~focalbench.training.bf16_conv.RoundedBf16Conv2d`: bf16
    on a CPU without native bf16."""
    from focalbench.hardware import cpu_has_native_bf16

    return torch.device(device).type == "cpu" and precision == "bf16" and not cpu_has_native_bf16()


@contextmanager
def _autocast_with_rounded_convolutions(device_type: str, dtype: torch.dtype):
    with torch.autocast(device_type=device_type, dtype=dtype), RoundedBf16Convolutions():
        yield


@torch.no_grad()
def predict_logits(model, data: SplitData, split: str, batch_size: int, device, precision, channels_last):
    """Float32 logits and labels of a whole split (evaluation mode, no augmentation)."""
    model.eval()
    logits, labels = [], []
    autocast = autocast_factory(device, precision)
    for x, y in iter_eval_batches(data, split, batch_size):
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            out = model(x)
        logits.append(out.float())
        labels.append(y)
    model.train()
    if not logits:
        return torch.empty(0, data.n_classes), torch.empty(0, dtype=torch.long)
    return torch.cat(logits).cpu(), torch.cat(labels).cpu()


def train(
    cfg, data: SplitData, model, alpha, device, precision: str, progress: ProgressCallback
) -> TrainResult:
    """Train one run's ``model`` on ``data`` as ``cfg`` says and evaluate it (see the module docstring): the
    group loop with K = 1 (:class:`SingleModel`). Raises :class:`Diverged` when the training loss turns
    non-finite."""
    (outcome,), _ = train_members(SingleModel(cfg, data, model, alpha, device, precision), data, progress)
    if isinstance(outcome, Diverged):
        raise outcome
    return outcome


# ----------------------------------------------------------------------------------------------------------
# What the loop trains: a group of K >= 1 members, alone (SingleModel) or fused (fused.FusedGroup)
# ----------------------------------------------------------------------------------------------------------


class Members(ABC):
    """The K >= 1 runs that one training loop trains together, as :func:`train_members` sees them.

    Every member shares what shapes the loop (data, epochs, batch size, optimizer settings, schedule,
    precision, device); they may differ in seed, loss and alpha. An implementation decides how the members'
    numbers are computed: :class:`SingleModel` (K = 1, a plain model) or ``fused.FusedGroup`` (K > 1, one
    fused model). Per-member values (losses, divergence) have the shape ``shape``: ``()`` for a run alone,
    which has no member dimension, ``(K,)`` for a group.

    Attributes every implementation sets:
        cfgs, models: each member's config and its own model (the one evaluated, holding its trained state
            after :meth:`copy_to_members`).
        optimizer: the SGD whose ``param_groups[0]["lr"]`` the loop sets before each step.
        per_example: whether :meth:`losses` can give per-example losses (``reduction="none"``).
        probability_scale: the factor of the logits in the members' probabilities (``probability_scale``):
            a float, or a tensor ``[K, 1, 1]`` when members differ.
        freezes_diverged: whether a member's steps stop at the step its loss turned non-finite (a group, so
            the others can go on). A run alone does not stop stepping: the loop stops at its next divergence
            check, and its last finite loss is the last one computed before that check.
    """

    freezes_diverged: bool
    per_example: bool
    probability_scale: float | torch.Tensor

    def __init__(
        self, cfgs: list, models: list, data: SplitData, device, precision: str, shape: tuple
    ) -> None:
        self.cfgs, self.models = list(cfgs), list(models)
        self.device, self.precision, self.shape = device, precision, shape
        self.channels_last = bool(cfgs[0].channels_last) and data.kind == "image"

    @property
    def k(self) -> int:
        return len(self.cfgs)

    @abstractmethod
    def batches(self, data: SplitData, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of every member's own training batches ``(x, y)``; ``y`` is ``[N]`` or ``[K, N]``."""

    @abstractmethod
    def start_epoch(self, epoch: int) -> None:
        """Set each member's class weights for the 0-based ``epoch`` (deferred re-weighting, :func:`drw_alpha`)."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The members' logits of a batch (called under autocast): ``[N, C]``, or ``[K, C, N]`` for a group."""

    @abstractmethod
    def losses(self, logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Each member's loss of ``shape``; with ``reduction="none"`` its alpha-weighted per-example losses."""

    @abstractmethod
    def step(self, losses: torch.Tensor, keep: torch.Tensor | None) -> None:
        """Backpropagate ``losses`` and update the parameters; ``keep`` (groups that freeze diverged members)
        says which members still train."""

    @abstractmethod
    def copy_to_members(self) -> None:
        """Make every member's own model hold its current parameters and statistics (before evaluation)."""


class SingleModel(Members):
    """A run alone (K = 1): its plain model, its criterion, focalbench's SGD with the fp16 gradient scaler.
    No member dimension: logits ``[N, C]``, the loss a scalar."""

    freezes_diverged = False

    def __init__(self, cfg, data: SplitData, model, alpha, device, precision: str) -> None:
        super().__init__([cfg], [model], data, device, precision, shape=())
        self.model = model
        self.criterion = make_criterion(cfg, data.train_counts, device)
        self.alpha, self.alpha_from, self.alpha_now = alpha, alpha_start(cfg), None
        self.optimizer = make_optimizer(cfg, model.parameters())
        # fp16 has too few exponent bits for small gradients: scale the loss up, unscale before the step
        # (and skip a step whose gradients overflowed). bf16 and fp32 need no scaling.
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.generator = torch.Generator(device=device).manual_seed(int(cfg.seed))
        self.per_example = takes_reduction(self.criterion)
        self.probability_scale = probability_scale(cfg)
        model.train()

    def batches(self, data: SplitData, batch_size: int):
        return iter_train_batches(data, batch_size, self.generator)

    def start_epoch(self, epoch: int) -> None:
        self.alpha_now = drw_alpha(self.alpha, self.alpha_from, epoch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def losses(self, logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if reduction == "mean":  # the three-argument call: a user's criterion may take no reduction
            return self.criterion(logits, target, self.alpha_now)
        return self.criterion(logits, target, self.alpha_now, reduction=reduction)

    def step(self, losses: torch.Tensor, keep: torch.Tensor | None) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def copy_to_members(self) -> None:
        pass  # the model trained is the member's own


def drw_alpha(alpha, alpha_from: int, epoch: int):
    """Deferred re-weighting: a member's class weights in the 0-based ``epoch``, None (unweighted) before its
    ``alpha_from`` epoch (:func:`alpha_start`) and ``alpha`` from then on."""
    return alpha if epoch >= alpha_from else None


# ----------------------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------------------


def train_members(
    members: Members, data: SplitData, progress: ProgressCallback
) -> tuple[list[TrainResult | Diverged], float]:
    """Train ``members`` (K >= 1) for their epochs and evaluate each (see the module docstring). Returns each
    member's ``TrainResult`` or ``Diverged``, in member order, and the training time in seconds (the epochs,
    without evaluation, as ``TrainResult.train_time_s``). Training stops early when every member diverged.

    ``progress`` gets ``{"event": "step", ...}`` at the progress interval (``cfg.log_every`` steps; the
    members' mean loss), ``{"event": "epoch", "member": k, ...}`` (the row of its history) per member that
    still trains and epoch, and ``{"event": "group_epoch", "epoch": e}`` after each epoch."""
    return _GroupTraining(members, data, progress).run()


class _GroupTraining:
    """One training of ``members``: the epoch loop of :func:`train_members` and the state it carries."""

    def __init__(self, members: Members, data: SplitData, progress: ProgressCallback) -> None:
        cfg = members.cfgs[0]  # what shapes the loop is the same for every member
        self.members, self.data, self.progress = members, data, progress
        self.n_train = int(data.train_y.numel())
        # Plain values for the step loop: an OmegaConf attribute read costs microseconds, every step.
        self.optim, self.epochs, self.batch_size, self.log_every = (
            plain(cfg.optim),
            int(cfg.epochs),
            int(cfg.batch_size),
            int(cfg.log_every),
        )
        self.steps_per_epoch = max(1, math.ceil(self.n_train / self.batch_size))
        self.evaluators = [
            Evaluator(c, data, members.device, members.precision, members.channels_last) for c in members.cfgs
        ]
        self.class_stats = TrainClassStats(members.k, data.n_classes, members.device)
        self.watch = DivergenceWatch(members.shape, members.device, members.freezes_diverged)
        self.histories: list[list[dict]] = [[] for _ in members.cfgs]
        self.bests = [{"score": -math.inf, "epoch": None, "state": None} for _ in members.cfgs]
        self.outcomes: list[TrainResult | Diverged | None] = [None] * members.k
        self.images_seen = 0
        self.global_step = 0
        self.lr = float(cfg.optim.lr)
        self.autocast = autocast_factory(members.device, members.precision)  # decided once for the run

    def run(self) -> tuple[list[TrainResult | Diverged], float]:
        train_time = 0.0
        for epoch in range(self.epochs):
            t0 = time.perf_counter()
            loss_sum = self._train_epoch(epoch)
            epoch_time = time.perf_counter() - t0
            train_time += epoch_time
            if loss_sum is None:  # every member diverged
                break
            self._evaluate_epoch(epoch, loss_sum, epoch_time)
        return self._results(train_time), train_time

    def _train_epoch(self, epoch: int) -> torch.Tensor | None:
        """One epoch of steps; the members' summed finite losses, or None when every member has diverged."""
        members, class_stats, watch, device = self.members, self.class_stats, self.watch, self.members.device
        optimizer, autocast = members.optimizer, self.autocast
        loss_sum = torch.zeros(members.shape, device=device)
        members.start_epoch(epoch)
        for step, (x, y) in enumerate(members.batches(self.data, self.batch_size)):
            self.lr = learning_rate(self.optim, epoch + step / self.steps_per_epoch, self.epochs)
            optimizer.param_groups[0]["lr"] = self.lr
            with autocast():
                logits = members.forward(x)
            losses = members.losses(logits, y)
            per_example = (
                members.losses(logits.detach(), y, reduction="none")
                if members.per_example
                else torch.zeros(y.shape, device=device)  # no loss shares: a member's criterion cannot say
            )
            class_stats.add(true_class_probability(logits, y, members.probability_scale), y, per_example)

            detached = losses.detach()
            finite = torch.isfinite(detached)
            watch.update(detached, finite, self.global_step)
            members.step(losses, keep=watch.keep())
            n = y.shape[-1]
            loss_sum += torch.where(finite, detached, torch.zeros_like(detached)) * n
            self.images_seen += n
            self.global_step += 1
            if self.global_step % self.log_every == 0:
                if self._check_divergence():
                    return None
                self.progress(
                    {"event": "step", "epoch": epoch, "step": step + 1, "steps": self.steps_per_epoch,
                     "loss": float(detached.mean())}
                )  # fmt: skip
        return None if self._check_divergence() else loss_sum

    def _check_divergence(self) -> bool:
        """Record the members that diverged since the last check (one read-back); return whether every member
        has diverged (then training stops)."""
        self.watch.note(self.steps_per_epoch, self.histories, self.outcomes)
        return all(o is not None for o in self.outcomes)

    def _evaluate_epoch(self, epoch: int, loss_sum: torch.Tensor, epoch_time: float) -> None:
        """Each member's history row of ``epoch`` (train loss, lr, speed, validation metrics) and best-val
        state; the epoch's per-class training statistics."""
        self.members.copy_to_members()
        sums = loss_sum.reshape(-1).tolist()
        for k, (evaluator, model) in enumerate(zip(self.evaluators, self.members.models, strict=True)):
            if self.outcomes[k] is not None:  # diverged
                continue
            row = {
                "epoch": epoch + 1,
                "train_loss": sums[k] / self.n_train,
                "lr": self.lr,
                "time_s": round(epoch_time, 4),
                "images_per_s": round(self.n_train / max(epoch_time, 1e-9), 1),
            }
            self.bests[k] = evaluator.end_of_epoch(model, epoch, row, self.bests[k])
            self.histories[k].append(row)
            self.progress({"event": "epoch", "member": k, **row})
        self.class_stats.end_epoch(epoch + 1)
        self.progress({"event": "group_epoch", "epoch": epoch + 1})

    def _results(self, train_time: float) -> list[TrainResult | Diverged]:
        """Every member's outcome: its ``Diverged``, or its final evaluations as a ``TrainResult``."""
        results = []
        for k, (cfg, evaluator, model) in enumerate(
            zip(self.members.cfgs, self.evaluators, self.members.models, strict=True)
        ):
            if self.outcomes[k] is not None:
                results.append(self.outcomes[k])
                continue
            final_test, final_val, best_val, calibration = evaluator.final(model, self.bests[k])
            results.append(
                TrainResult(
                    history=self.histories[k],
                    final_test=final_test,
                    final_val=final_val,
                    best_val=best_val,
                    calibration=calibration,
                    train_time_s=train_time,
                    images_seen=self.images_seen,
                    alpha_start_epoch=alpha_start(cfg),
                    class_history=self.class_stats.rows(k),
                    logits=evaluator.final_logits,
                    final_state=evaluator.final_state,
                )
            )
        return results


class DivergenceWatch:
    """Each member's divergence, tracked on the device without a host sync per step: the first step whose
    loss was non-finite, and the last finite loss while the member trained. Read back only by :meth:`note`.

    ``freezes``: a diverged member stops training at that step (a group), so its later losses do not count as
    its last finite one; otherwise (a run alone) every finite loss up to the check counts."""

    def __init__(self, shape: tuple, device, freezes: bool) -> None:
        self.last_finite = torch.full(shape, float("nan"), device=device)
        self.first_bad_step = torch.full(shape, -1, dtype=torch.long, device=device)
        self.freezes = freezes

    def update(self, losses: torch.Tensor, finite: torch.Tensor, global_step: int) -> None:
        """One step's detached ``losses`` and whether each is finite."""
        alive = self.first_bad_step < 0
        counts = finite & alive if self.freezes else finite
        self.last_finite = torch.where(counts, losses, self.last_finite)
        self.first_bad_step = torch.where(~finite & alive, global_step, self.first_bad_step)

    def keep(self) -> torch.Tensor | None:
        """Which members still train (``SGD.step(keep=...)``): those that have not diverged; None (all of
        them) when diverged members are not frozen."""
        return self.first_bad_step < 0 if self.freezes else None

    def note(self, steps_per_epoch: int, histories: list[list[dict]], outcomes: list) -> None:
        """Set ``outcomes[k]`` to a ``Diverged`` for each member that diverged since the last call."""
        bad_steps = self.first_bad_step.reshape(-1).tolist()
        if all(b < 0 for b in bad_steps):
            return
        last = self.last_finite.reshape(-1).tolist()
        for k, bad in enumerate(bad_steps):
            if bad >= 0 and outcomes[k] is None:
                outcomes[k] = Diverged(
                    epoch=bad // steps_per_epoch + 1,
                    step=bad % steps_per_epoch + 1,
                    last_finite_loss=None if math.isnan(last[k]) else last[k],
                    history=list(histories[k]),
                )


def plain(node) -> SimpleNamespace:
    """A config group as a plain namespace (same values, plain attribute reads)."""
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(vars(node))
    return SimpleNamespace(**values)


def make_optimizer(cfg, params) -> SGD:
    """SGD as ``cfg.optim`` says (focalbench's own: no torch._dynamo import, see training/optim.py)."""
    momentum = float(cfg.optim.momentum)
    return SGD(
        params,
        lr=float(cfg.optim.lr),
        momentum=momentum,
        nesterov=bool(cfg.optim.nesterov) and momentum > 0,
        weight_decay=float(cfg.optim.weight_decay),
    )


class Evaluator:
    """A run's evaluation: validation metrics after each epoch (tracking the best-val state), then the final
    test, validation, temperature and best-val evaluations. One object per run; fused groups use one per
    member, on the member's own model, so that they compute exactly what an unfused run computes."""

    def __init__(self, cfg, data: SplitData, device, precision: str, channels_last: bool):
        self.cfg, self.data = cfg, data
        self.eval_kw = dict(
            batch_size=int(cfg.eval.batch_size),
            device=device,
            precision=precision,
            channels_last=channels_last,
        )
        self.metric_kw = dict(
            train_counts=data.train_counts,
            many_threshold=int(cfg.eval.many_threshold),
            few_threshold=int(cfg.eval.few_threshold),
            n_bins=int(cfg.eval.ece_bins),
        )
        self.has_val = data.val_y.numel() > 0
        self.scale = probability_scale(cfg)
        self.final_logits: dict = {}  # {"val"|"test": (logits, labels)} of the final model, set by final()
        self.final_state: dict | None = None  # save_model=true: the final model's weights, set by final()

    def _logits(self, model, split: str):
        """Float32 logits (times the probability scale, see ``probability_scale``) and labels of a split."""
        logits, labels = predict_logits(model, self.data, split, **self.eval_kw)
        return (logits * self.scale if self.scale != 1.0 else logits), labels

    def end_of_epoch(self, model, epoch: int, row: dict, best: dict) -> dict:
        """Add the validation metrics to the epoch's history ``row``; return the (updated) best-val record."""
        if not self.has_val:
            return best
        val_logits, val_labels = self._logits(model, "val")
        val = classification_metrics(val_logits, val_labels, **self.metric_kw)
        row.update({f"val_{k}": val[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "nll", "ece")})
        if val["balanced_accuracy"] > best["score"]:
            best = {
                "score": val["balanced_accuracy"],
                "epoch": epoch + 1,
                "state": copy.deepcopy(model.state_dict()),
            }
        return best

    def final(self, model, best: dict) -> tuple[dict, dict | None, dict | None, dict | None]:
        """``(final_test, final_val, best_val, calibration)`` of the trained ``model`` (which ends up holding the
        best-val state when there is a validation split)."""
        metric_kw = self.metric_kw
        if self.cfg.get("save_model", False):  # before the best-val state replaces the final one below
            plain = getattr(model, "_orig_mod", model)  # a compiled model's keys are its plain model's
            self.final_state = {k: v.detach().cpu().clone() for k, v in plain.state_dict().items()}
        test_logits, test_labels = self._logits(model, "test")
        self.final_logits["test"] = (test_logits, test_labels)
        if not self.has_val:
            return scores_from_logits(test_logits, test_labels, None, None, metric_kw) + (None,)
        val_logits, val_labels = self._logits(model, "val")
        self.final_logits["val"] = (val_logits, val_labels)
        final_test, final_val, calibration = scores_from_logits(
            test_logits, test_labels, val_logits, val_labels, metric_kw
        )
        model.load_state_dict(best["state"])
        best_logits, best_labels = self._logits(model, "test")
        best_val = {
            "epoch": best["epoch"],
            "val_balanced_accuracy": best["score"],
            "test": classification_metrics(best_logits, best_labels, **metric_kw),
        }
        return final_test, final_val, best_val, calibration


# How the temperature was fitted, as the record and the reports say it (metrics.prior_shift_weights).
TEMPERATURE_FIT = (
    "validation split, NLL weighted per class by pi_test(c) / pi_val(c): fitted for the test split's class "
    "prior (for a balanced test set, the class-balanced NLL)"
)
TEMPERATURE_FIT_PLAIN = "validation split, plain NLL (its class prior is the test split's)"


def scores_from_logits(test_logits, test_labels, val_logits, val_labels, metric_kw: dict):
    """``(final_test, final_val, calibration)`` from a model's final logits: the test and validation metrics,
    and the temperature fitted on the validation split for the test split's class prior
    (``metrics.prior_shift_weights``) with NLL and ECE after scaling. Without a validation split the last two
    are None. The one function behind a run's record and ``focalbench report --rescore``."""
    n_bins = int(metric_kw["n_bins"])
    final_test = classification_metrics(test_logits, test_labels, **metric_kw)
    final_test["reliability"] = reliability_bins(test_logits, test_labels, n_bins=n_bins)
    if val_labels is None or val_labels.numel() == 0:
        return final_test, None, None
    final_val = classification_metrics(val_logits, val_labels, **metric_kw)
    weights = prior_shift_weights(val_labels, test_labels, int(test_logits.shape[1]))
    temperature = fit_temperature(val_logits, val_labels, weights)
    calibration = calibration_metrics(test_logits, test_labels, temperature, n_bins=n_bins)
    calibration["fitted_on"] = TEMPERATURE_FIT if weights is not None else TEMPERATURE_FIT_PLAIN
    return final_test, final_val, calibration
