"""How a run trains, reads its data, probes its gradient and what it asks of the machine: the
``training``, ``data``, ``probe`` and ``resources`` sections of an experiment file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from pipeline.bounds import (
    MAX_CPUS,
    MAX_GPUS,
    MAX_GRAD_CLIP,
    MAX_LEARNING_RATE,
    MAX_STEPS,
    Frozen,
    Number,
    PositiveInt,
    Sequences,
)


class TrainingConfig(Frozen):
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    learning_rate: Annotated[Number, Field(gt=0, le=MAX_LEARNING_RATE)] = 3e-3
    batch_size: PositiveInt = 128  # at most data.n_train (Experiment)
    max_steps: Annotated[StrictInt, Field(ge=1, le=MAX_STEPS)] = 2000
    # clip at this bound; None: never
    grad_clip: Annotated[Number, Field(gt=0, le=MAX_GRAD_CLIP)] | None = 1.0
    # norm: scale the whole gradient down to global L2 norm grad_clip; value: clamp each element
    # to [-grad_clip, grad_clip] (Arjovsky et al. 2016's code). The pre-clip norm is recorded
    clip_mode: Literal["norm", "value"] = "norm"
    # RMSprop's moving-average decay of squared gradients (PyTorch's alpha; None: its 0.99)
    rmsprop_decay: Annotated[Number, Field(gt=0, lt=1)] | None = None
    eval_every: PositiveInt = 100  # steps between validations
    solved_accuracy: Annotated[Number, Field(gt=0, le=1)] = 0.99  # validation accuracy to stop at
    log_every: PositiveInt = 25  # steps between training-metric writes to MLflow
    # a run diverges on a non-finite loss or gradient, or when a log_every window's mean training
    # loss exceeds this multiple of the task's memoryless baseline loss (an explosion that
    # clipping did not contain); a large pre-clip gradient norm alone is what clipping handles
    diverge_loss_factor: Annotated[Number, Field(gt=1)] = 100.0

    @model_validator(mode="after")
    def _options_fit(self):
        if self.rmsprop_decay is not None and self.optimizer != "rmsprop":
            raise ValueError(
                f"rmsprop_decay: applies to the rmsprop optimizer only, but optimizer is "
                f"{self.optimizer!r} (got {self.rmsprop_decay!r})"
            )
        if self.clip_mode == "value" and self.grad_clip is None:
            raise ValueError(
                "clip_mode: 'value' clamps each gradient element to grad_clip, but grad_clip is "
                "null (got 'value')"
            )
        return self

    @model_validator(mode="after")
    def _cadence_fits(self):
        for field, what in (("eval_every", "validate"), ("log_every", "write a training metric")):
            value = getattr(self, field)
            if value > self.max_steps:
                raise ValueError(
                    f"{field}: {value} exceeds training.max_steps {self.max_steps}: the run "
                    f"would never {what}"
                )
        return self


class DataConfig(Frozen):
    n_train: Sequences = 20_000
    n_val: Sequences = 1_000
    n_test: Sequences = 2_000

    def sizes(self) -> dict[str, int]:
        """Sequences per split, by split name (the data stage's file names)."""
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


class ProbeConfig(Frozen):
    batch_size: PositiveInt = 128  # probe samples, from the validation split (at most n_val)
    # also probe every N validations; 0: never. A run validates at most MAX_STEPS times.
    every_evals: Annotated[StrictInt, Field(ge=0, le=MAX_STEPS)] = 5


def n_probes(max_steps: int, eval_every: int, every_evals: int) -> int:
    """Probes in a run that trains ``max_steps``: before, after, and every ``every_evals``
    validations (as ``LitSequenceModel`` does; none between when ``every_evals`` is 0).
    """
    periodic = max_steps // (eval_every * every_evals) if every_evals else 0
    return 2 + periodic


class ResourcesConfig(Frozen):
    """What one run asks for. Not part of a run's identity: moving a sweep elsewhere does not
    retrain finished runs.
    """

    # CPUs (and torch threads) per run, locally and on Ray
    cpus_per_run: Annotated[StrictInt, Field(ge=1, le=MAX_CPUS)] = 1
    # Ray: 0.25 lets 4 runs share a GPU
    gpus_per_run: Annotated[Number, Field(ge=0, le=MAX_GPUS)] = 0

    @field_validator("gpus_per_run")
    @classmethod
    def _whole_gpus(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(
                "a fraction of a GPU must be below 1 (Ray's rule): above 1, whole GPUs"
            )
        return v
