r"""Per-class weights alpha from the training class counts n_c, and config-level alpha resolution.

Modes (``ALPHA_MODES``): ``inverse_freq`` (1/n_c), ``inverse_sqrt_freq`` (1/sqrt(n_c)) and ``effective_num``
((1 - beta)/(1 - beta^n_c), Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples",
CVPR), normalised so that the weights sum to C unless asked otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from focalbench.errors import ConfigError
from focalbench.losses._checks import (
    ALPHA_MODES,
    _alpha_for_classes,
    _counts_to_tensor,
    _is_real,
    _normalize_alpha,
)

NORMALIZE_MODES: tuple[str, ...] = ("sum_to_C", "none")


def _one_minus_power(beta: float, n: torch.Tensor) -> torch.Tensor:
    """1 - beta^n as -expm1(n log beta): no cancellation for beta near 1; beta = 0 gives 1 (n > 0)."""
    log_beta = math.log(beta) if beta > 0 else float("-inf")
    return -torch.expm1(n * log_beta)


def class_weights(
    counts: Sequence[float] | torch.Tensor,
    mode: str,
    beta: float = 0.9999,
    normalize: str = "sum_to_C",
) -> torch.Tensor:
    r"""Per-class weights from the training-set class counts n_c.

    Modes (``ALPHA_MODES``):
        "none": w_c = 1.
        "inverse_freq": w_c = 1 / n_c.
        "inverse_sqrt_freq": w_c = 1 / sqrt(n_c).
        "effective_num": w_c = (1 - beta) / (1 - beta^{n_c}), the inverse effective number of
            samples (Cui et al. 2019). beta -> 1 approaches inverse_freq, beta = 0 gives uniform.

    Args:
        counts: length-C sequence or tensor of sample counts (> 0 for every mode but "none").
        mode: one of ``ALPHA_MODES``.
        beta: in [0, 1); only "effective_num" uses it.
        normalize: "sum_to_C" scales the weights so that they sum to C; "none" returns them raw.

    Returns:
        float32 tensor of length C (on the CPU).

    Raises:
        ConfigError (a ValueError) for an unknown mode or normalize, beta outside [0, 1), empty
        counts, or a count that is negative, non-finite, or zero where the mode divides by it.
    """
    if mode not in ALPHA_MODES:
        raise ConfigError(f"mode must be one of {', '.join(ALPHA_MODES)}; got {mode!r}")
    if normalize not in NORMALIZE_MODES:
        raise ConfigError(f"normalize must be one of {', '.join(NORMALIZE_MODES)}; got {normalize!r}")
    if not _is_real(beta) or not 0.0 <= float(beta) < 1.0:
        raise ConfigError(f"beta must be in [0, 1) (0.9999 is Cui et al.'s default); got {beta!r}")
    n = _counts_to_tensor(counts)
    allowed = n >= 0 if mode == "none" else n > 0
    bad = ~(torch.isfinite(n) & allowed)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        need = ">= 0" if mode == "none" else f"> 0 (mode {mode!r} divides by it)"
        raise ConfigError(f"counts must be finite and {need}; class {first} has count {n[first].item():g}")

    if mode == "none":
        weights = torch.ones_like(n)
    elif mode == "inverse_freq":
        weights = 1.0 / n
    elif mode == "inverse_sqrt_freq":
        weights = 1.0 / n.sqrt()
    else:
        weights = (1.0 - beta) / _one_minus_power(beta, n)
    if normalize == "sum_to_C":
        weights = weights * (n.numel() / weights.sum())
    return weights.to(torch.float32)


def resolve_alpha(
    alpha: str | float | Sequence[float] | torch.Tensor | None,
    counts: Sequence[float] | torch.Tensor | None,
    beta: float = 0.9999,
    normalize: str = "sum_to_C",
) -> torch.Tensor | None:
    """Turn a config-level alpha into what ``focal_loss`` takes, using the training split's class counts.

    - None or "none" -> None (no class weights).
    - a mode string from ``ALPHA_MODES`` -> ``class_weights(counts, mode, beta, normalize)``.
    - a float in [0, 1] -> tensor [1 - alpha, alpha]; only when there are 2 classes.
    - a list / 1-D tensor of C non-negative weights -> float32 tensor, used as given (not normalised).

    ``counts`` (length C) fixes C; it may be None only when alpha is None or "none".
    Raises ConfigError (a ValueError) that names alpha and the alternatives.
    """
    if alpha is None or (isinstance(alpha, str) and alpha == "none"):
        return None
    if isinstance(alpha, str) and alpha not in ALPHA_MODES:
        raise ConfigError(
            f"alpha must be None, a float in [0, 1] (binary only), a list of per-class weights or one of "
            f"{', '.join(ALPHA_MODES)}; got {alpha!r}"
        )
    if counts is None:
        raise ConfigError(f"alpha={alpha!r} needs the training class counts to know C; counts is None")
    n = _counts_to_tensor(counts)
    if isinstance(alpha, str):
        return class_weights(n, alpha, beta=beta, normalize=normalize)
    checked = _normalize_alpha(alpha)
    return _alpha_for_classes(checked, n.numel(), torch.float32, torch.device("cpu"))
