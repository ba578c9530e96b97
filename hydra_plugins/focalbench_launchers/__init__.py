"""focalbench's Hydra launchers: per-group resources for submitit (local and SLURM), and Ray.

Hydra finds launchers in the ``hydra_plugins`` namespace package only, hence this package beside
``focalbench``. Importing it is cheap: submitit and Ray are imported when a sweep launches.
"""
