"""The registry: the one place that maps a loss, model or data-source name to its implementation.

Three registries, one per config group, hold every component by the name its config file gives in ``name:``:

    LOSSES    loss.name   -> a criterion factory      (focalbench/losses/*.py)
    MODELS    model.name  -> a model builder          (focalbench/models/*.py)
    DATASETS  data.name   -> a data loader            (focalbench/data/*.py)

The torch-side modules register into them with a decorator, next to the code they register::

    @LOSSES.register("focal", summary="focal loss, Lin et al. 2017", validate=check_focal_keys)
    def focal_criterion(loss_cfg, class_counts): ...

So adding a component means one module (with its ``register`` call) plus one YAML file in ``configs/<group>/``
that sets ``name:`` and the component's keys with their defaults; nothing else needs to change. Each
implementation package imports all of its modules (``import_submodules``), so a new module is found.

This module imports neither torch nor Hydra. ``Registry.get`` imports the implementation package the first time
it is asked, so the CLI can list presets, print help and reject most bad input without the 2-second torch import.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from focalbench.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    """One registered component.

    ``build`` is the implementation (criterion factory, model builder or data loader; see the group's
    package for its signature). ``validate(group_cfg, cfg)`` checks the component's own keys at plan time and
    raises ConfigError with one line; ``cfg`` is the whole composed config, for cross-group checks. ``meta``
    holds facts other code may ask without building anything (e.g. a data source's ``kind``).
    """

    name: str
    build: Callable[..., Any]
    summary: str = ""
    validate: Callable[[Any, Any], None] | None = None
    meta: dict = field(default_factory=dict)


class Registry:
    """Names to entries for one config group, filled by the modules of ``package`` when they are imported."""

    def __init__(self, group: str, package: str):
        self.group = group
        self.package = package
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        *,
        summary: str = "",
        validate: Callable[[Any, Any], None] | None = None,
        **meta: Any,
    ) -> Callable[[Callable], Callable]:
        """Decorator: register the decorated function as the implementation of ``name``."""

        def decorator(build: Callable) -> Callable:
            if name in self._entries and self._entries[name].build is not build:
                raise ValueError(f"{self.group} '{name}' is registered twice")
            self._entries[name] = Entry(name, build, summary, validate, dict(meta))
            return build

        return decorator

    def _load(self) -> None:
        importlib.import_module(self.package)

    def names(self) -> list[str]:
        """Every registered name (imports the implementation package)."""
        self._load()
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        """The entry for ``name``; ConfigError naming the registered ones when there is none."""
        self._load()
        if name not in self._entries:
            raise ConfigError(
                f"{self.group}.name={name} is not a registered {self.group}; choose one of: "
                f"{', '.join(sorted(self._entries))}"
            )
        return self._entries[name]


def import_submodules(package_name: str) -> None:
    """Import every module of a package, so that their ``register`` calls run (called by the package)."""
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")


LOSSES = Registry("loss", "focalbench.losses")
MODELS = Registry("model", "focalbench.models")
DATASETS = Registry("data", "focalbench.data")
