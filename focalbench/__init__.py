"""focalbench: does focal loss, or class-balanced cross-entropy, help on imbalanced data?

The package is laid out the way data flows:

    config (Hydra, ``focalbench.config``)
      -> data        (``focalbench.data``: synthetic tasks, CIFAR-LT, all resident on the device)
      -> models      (``focalbench.models``: mlp, cnn, resnet32)
      -> training    (``focalbench.training``: the loop, evaluation, the run record)
      -> sweeps      (``focalbench.sweeps``: Hydra grids, resume, launchers)
      -> reports     (``focalbench.reports``: tables, plots, claim checks)

``focalbench.losses`` holds the loss library the whole benchmark rests on.
``focalbench.cli`` is a thin Typer layer over the same functions.

Importing this package does not import torch, so that ``focalbench --help`` starts fast.
"""

__version__ = "0.1.0"
