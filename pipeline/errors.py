"""Errors meant for the user: each message names the file, field, value or URI at fault."""


class PipelineError(RuntimeError):
    """A problem the user can fix; the CLI prints the message and exits non-zero."""


class ConfigError(PipelineError, ValueError):
    """An experiment file that cannot be used (exit code 2)."""


class DataError(PipelineError):
    """A data file that is missing, truncated or altered."""


class WeightsError(PipelineError):
    """A weights file that is not a plain state dict of tensors."""


class TrackingError(PipelineError):
    """A tracking store that is malformed, unreachable or unusable."""


class SweepError(PipelineError):
    """Runs that failed, or a sweep that cannot start."""


class ReportError(PipelineError):
    """A report that cannot be written, e.g. no finished runs."""
