"""Plan-time checks of model config fields, shared by the model modules (one wording for every model)."""

from __future__ import annotations

from typing import Any

from focalbench.errors import ConfigError


def positive_ints(value: Any, key: str, length: int | None = None) -> list[int]:
    """A list of positive ints (e.g. layer widths); ``length`` fixes how many are expected."""
    try:
        ints = [int(v) for v in value]
        if any(isinstance(v, bool) or float(v) != int(v) for v in value):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"model.{key} must be a list of positive ints, got {value!r}") from None
    if any(v <= 0 for v in ints) or (length is not None and len(ints) != length):
        what = f"{length} positive ints" if length is not None else "a list of positive ints"
        raise ConfigError(f"model.{key} must be {what}, got {ints}")
    return ints


def positive_number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ConfigError(f"model.{key} must be a finite number > 0, got {value!r}")
    return float(value)


def flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"model.{key} must be true or false, got {value!r}")
    return value


def image_channels(input_shape: tuple[int, ...], name: str, divisor: int) -> int:
    """Check that ``input_shape`` is ``(channels, H, W)`` with H, W divisible by ``divisor``; return channels."""
    if len(input_shape) != 3 or input_shape[1] % divisor or input_shape[2] % divisor:
        raise ConfigError(
            f"model.name={name} needs image input (channels, H, W) with H and W divisible by {divisor}, "
            f"got input shape {tuple(input_shape)}; use model.name=mlp for vector data"
        )
    return int(input_shape[0])
