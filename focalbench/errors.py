"""Errors that the CLI turns into one clear line and exit code 2 (no traceback).

Library code raises these for anything the *user* got wrong (a bad config value, a missing
archive). Programming errors stay ordinary exceptions so that they keep their traceback.
"""


class FocalbenchError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    exit_code = 2  # usage error


class ConfigError(FocalbenchError, ValueError):
    """A config value or override is invalid (unknown key, wrong type, out of range)."""


class DataError(FocalbenchError):
    """A dataset cannot be found, read or verified."""


class ReportError(FocalbenchError):
    """Run records cannot be reported as asked (e.g. one cell mixes runs made on different devices)."""


class LaunchError(FocalbenchError):
    """A launcher (joblib, submitit, SLURM) failed to run the grid; the records written so far stay valid."""

    exit_code = 1
