"""Errors that the CLI turns into one clear line and exit code 2 (no traceback).

Library code raises these for anything the *user* got wrong (a bad config value, a missing
archive). Programming errors stay ordinary exceptions so that they keep their traceback.
"""


class FocalbenchError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    exit_code = 2  # usage error


class ConfigError(FocalbenchError, ValueError):
    """A config value or override is invalid (unknown key, wrong type, out of range)."""


class NotApplicable(ConfigError):
    """A key that the chosen component does not have (``gamma=2`` with ``loss=ce``, ``loss.tau`` with
    ``loss=focal``). Alone it is a config error like any other; in a grid (``loss=ce,focal gamma=0,2``) the
    sweep skips the combinations it makes and runs the rest (focalbench.sweeps.plan).

    ``subject`` is the component (``ce``), ``setting`` the key and value that do not apply (``gamma=2``),
    ``reason`` why, in a few words (``cross-entropy has no gamma``)."""

    def __init__(self, message: str, subject: str, setting: str, reason: str):
        super().__init__(message)
        self.subject, self.setting, self.reason = subject, setting, reason


class DataError(FocalbenchError):
    """A dataset cannot be found, read or verified."""


class ReportError(FocalbenchError):
    """Run records cannot be reported as asked (e.g. one cell mixes runs made on different devices)."""


class LaunchError(FocalbenchError):
    """A launcher (joblib, submitit, SLURM) failed to run the grid; the records written so far stay valid."""

    exit_code = 1
