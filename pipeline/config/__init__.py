"""Experiment files: loading and validation, the sections of a file, run specs and their
results, the tuning choice, and the claims of replication files. Everything here is typed,
validated and frozen; nothing here trains or writes.
"""

from pipeline.config.experiment import Experiment, load

__all__ = ["Experiment", "load"]
