"""Learning-rate schedules, as a pure function of (fractional) epoch.

    lr(t) = base_lr * warmup(t) * decay(t)

- warm-up (``warmup_mode``), linear to base_lr over the first ``warmup_epochs`` epochs:
  ``step`` (default): the factor is min(1, (t + 0.001) / warmup_epochs) at fractional epoch t, a ramp per step
  from about 0 (the 0.001 keeps the very first step off lr 0);
  ``epoch``: a staircase, (floor(t) + 1) / warmup_epochs during epoch floor(t), constant within an epoch, so
  the first epoch runs at base_lr / warmup_epochs (LDAM-DRW's code: lr/5, 2lr/5, ... over 5 epochs);
- ``cosine``: after warm-up, 0.5 * (1 + cos(pi * progress)) down to 0 at the last epoch;
- ``step``: base_lr * milestone_factors[k] from epoch milestones[k] on (absolute factors, as in the
  LDAM-DRW recipe: x0.01 at 160 and x0.0001 at 180);
- ``constant``: no decay.
"""

from __future__ import annotations

import bisect
import math


def learning_rate(optim_cfg, epoch: float, total_epochs: int) -> float:
    """The learning rate at fractional epoch ``epoch`` in [0, total_epochs)."""
    base = float(optim_cfg.lr)
    warmup = float(optim_cfg.warmup_epochs)
    factor = 1.0
    if warmup > 0 and epoch < warmup:
        if getattr(optim_cfg, "warmup_mode", "step") == "epoch":
            factor = min(1.0, (math.floor(epoch) + 1.0) / warmup)
        else:
            factor = min(1.0, (epoch + 1e-3) / warmup)
    if optim_cfg.schedule == "cosine":
        span = max(total_epochs - warmup, 1e-9)
        progress = min(max((epoch - warmup) / span, 0.0), 1.0)
        factor *= 0.5 * (1.0 + math.cos(math.pi * progress))
    elif optim_cfg.schedule == "step":
        k = bisect.bisect_right(list(optim_cfg.milestones), epoch)
        if k > 0:
            factor *= float(optim_cfg.milestone_factors[k - 1])
    return base * factor
