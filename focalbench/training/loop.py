"""The training loop and the evaluation of one run.

One run = train ``cfg.epochs`` epochs of SGD on the training split, evaluating on the validation split after
every epoch, then evaluate the final model on the balanced test set. The model state with the best validation
balanced accuracy is kept aside and evaluated on the test set at the end, labelled "best-val epoch": the test
set never selects anything.

Speed: the data already lives on the device (as in airbench), and a step does no host-device synchronisation.
Divergence is tracked on the device (the first non-finite step and the last finite loss) and read back only at
the progress interval (``cfg.log_every`` steps) and at the end of each epoch.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch

from focalbench.data import SplitData, iter_eval_batches, iter_train_batches
from focalbench.registry import LOSSES
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


def autocast_context(device: torch.device, precision: str):
    """Autocast for the forward pass: bf16/fp16 where asked, a no-op context for fp32."""
    if precision == "fp32":
        return torch.autocast(device_type=device.type, enabled=False)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def predict_logits(model, data: SplitData, split: str, batch_size: int, device, precision, channels_last):
    """Float32 logits and labels of a whole split (evaluation mode, no augmentation)."""
    model.eval()
    logits, labels = [], []
    for x, y in iter_eval_batches(data, split, batch_size):
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, precision):
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
    """Train ``model`` on ``data`` as ``cfg`` says and evaluate it (see the module docstring)."""
    channels_last = bool(cfg.channels_last) and data.kind == "image"
    criterion = make_criterion(cfg, data.train_counts, device)
    alpha_from = alpha_start(cfg)
    optimizer = make_optimizer(cfg, model.parameters())
    # fp16 has too few exponent bits for small gradients: scale the loss up, unscale before the step
    # (and skip a step whose gradients overflowed). bf16 and fp32 need no scaling.
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    generator = torch.Generator(device=device).manual_seed(int(cfg.seed))
    n_train = int(data.train_y.numel())
    steps_per_epoch = max(1, math.ceil(n_train / int(cfg.batch_size)))
    evaluator = Evaluator(cfg, data, device, precision, channels_last)
    class_stats = TrainClassStats(1, data.n_classes, device)
    p_scale = probability_scale(cfg)
    per_example_losses = takes_reduction(criterion)
    # Plain values for the step loop: an OmegaConf attribute read costs microseconds, every step.
    optim, epochs, batch_size, log_every = (
        plain(cfg.optim),
        int(cfg.epochs),
        int(cfg.batch_size),
        int(cfg.log_every),
    )

    # Divergence bookkeeping on the device: no sync per step.
    last_finite = torch.full((), float("nan"), device=device)
    first_bad_step = torch.full((), -1, dtype=torch.long, device=device)

    history: list[dict] = []
    best = {"score": -math.inf, "epoch": None, "state": None}
    train_time = 0.0
    images_seen = 0
    global_step = 0
    model.train()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        epoch_alpha = alpha if epoch >= alpha_from else None  # deferred re-weighting (DRW)
        for step, (x, y) in enumerate(iter_train_batches(data, batch_size, generator)):
            lr = learning_rate(optim, epoch + step / steps_per_epoch, epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, precision):
                logits = model(x)
            loss = criterion(logits, y, epoch_alpha)
            per_example = (
                criterion(logits.detach(), y, epoch_alpha, reduction="none")
                if per_example_losses
                else torch.zeros(y.shape, device=device)  # no loss shares: the criterion cannot say
            )
            class_stats.add(true_class_probability(logits, y, p_scale), y, per_example)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

            detached = loss.detach()
            finite = torch.isfinite(detached)
            last_finite = torch.where(finite, detached, last_finite)
            first_bad_step = torch.where(~finite & (first_bad_step < 0), global_step, first_bad_step)
            loss_sum += torch.where(finite, detached, torch.zeros_like(detached)) * y.numel()
            images_seen += y.numel()
            global_step += 1
            if global_step % log_every == 0:
                _check_divergence(first_bad_step, last_finite, steps_per_epoch, history)
                progress(
                    {
                        "event": "step",
                        "epoch": epoch,
                        "step": step + 1,
                        "steps": steps_per_epoch,
                        "loss": float(detached),
                    }
                )
        _check_divergence(first_bad_step, last_finite, steps_per_epoch, history)
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time

        row = {
            "epoch": epoch + 1,
            "train_loss": float(loss_sum) / n_train,
            "lr": lr,
            "time_s": round(epoch_time, 4),
            "images_per_s": round(n_train / max(epoch_time, 1e-9), 1),
        }
        best = evaluator.end_of_epoch(model, epoch, row, best)
        history.append(row)
        class_stats.end_epoch(epoch + 1)
        progress({"event": "epoch", **row})

    final_test, final_val, best_val, calibration = evaluator.final(model, best)
    return TrainResult(
        class_history=class_stats.rows(),
        logits=evaluator.final_logits,
        history=history,
        final_test=final_test,
        final_val=final_val,
        best_val=best_val,
        calibration=calibration,
        train_time_s=train_time,
        images_seen=images_seen,
        alpha_start_epoch=alpha_from,
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


def _check_divergence(first_bad_step, last_finite, steps_per_epoch: int, history: list[dict]) -> None:
    bad = int(first_bad_step)
    if bad >= 0:
        last = float(last_finite)
        raise Diverged(
            epoch=bad // steps_per_epoch + 1,
            step=bad % steps_per_epoch + 1,
            last_finite_loss=None if math.isnan(last) else last,
            history=history,
        )
