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
    """How every run trains: the ``training`` section (a tuning grid varies some of it)."""

    optimizer: Literal["adam", "sgd", "rmsprop"] = Field("adam", description="the optimizer")
    learning_rate: Annotated[Number, Field(gt=0, le=MAX_LEARNING_RATE)] = Field(
        3e-3, description="the optimizer's learning rate"
    )
    batch_size: PositiveInt = Field(  # at most data.n_train (Experiment checks it)
        128, description="training sequences per update; at most data.n_train"
    )
    max_steps: Annotated[StrictInt, Field(ge=1, le=MAX_STEPS)] = Field(
        2000, description="the training budget: a run stops after this many updates"
    )
    grad_clip: Annotated[Number, Field(gt=0, le=MAX_GRAD_CLIP)] | None = Field(
        1.0, description="clip the gradient at this bound (clip_mode says how); null: never"
    )
    clip_mode: Literal["norm", "value"] = Field(
        "norm",
        description="norm: scale the whole gradient down to global L2 norm grad_clip; value: "
        "clamp each element to [-grad_clip, grad_clip] (Arjovsky et al. 2016's code). The "
        "gradient norm recorded is the one before clipping",
    )
    rmsprop_decay: Annotated[Number, Field(gt=0, lt=1)] | None = Field(
        None,
        description="RMSprop's moving-average decay of squared gradients (PyTorch's alpha; "
        "null: its 0.99); only with optimizer rmsprop",
    )
    eval_every: PositiveInt = Field(100, description="updates between validations")
    solved_accuracy: Annotated[Number, Field(gt=0, le=1)] = Field(
        0.99, description="the validation accuracy at which a run counts as solved and stops"
    )
    log_every: PositiveInt = Field(
        25, description="updates between writes of the training metrics to MLflow"
    )
    # a large pre-clip gradient norm alone is what clipping handles, not a divergence
    diverge_loss_factor: Annotated[Number, Field(gt=1)] = Field(
        100.0,
        description="a run diverges on a non-finite loss or gradient, or when a log_every "
        "window's mean training loss exceeds this multiple of the task's memoryless baseline "
        "loss (an explosion that clipping did not contain)",
    )

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
    """Sequences per split of every (task, distance, seed) data folder."""

    n_train: Sequences = Field(20_000, description="training sequences")
    n_val: Sequences = Field(
        1_000, description="validation sequences, none of them a training sequence"
    )
    n_test: Sequences = Field(2_000, description="test sequences, none of them a training sequence")

    def sizes(self) -> dict[str, int]:
        """Sequences per split, by split name (the data stage's file names)."""
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


class ProbeConfig(Frozen):
    """The gradient probe: how much of the loss's gradient reaches the key step, measured before
    training, every so many validations and after training.
    """

    batch_size: PositiveInt = Field(
        128, description="probe samples, from the validation split (at most data.n_val)"
    )
    # a run validates at most MAX_STEPS times
    every_evals: Annotated[StrictInt, Field(ge=0, le=MAX_STEPS)] = Field(
        5, description="also probe every this many validations; 0: only before and after"
    )


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

    cpus_per_run: Annotated[StrictInt, Field(ge=1, le=MAX_CPUS)] = Field(
        1, description="CPUs (and torch threads) per run, locally and on Ray"
    )
    gpus_per_run: Annotated[Number, Field(ge=0, le=MAX_GPUS)] = Field(
        0,
        description="GPUs per run on Ray; a fraction below 1 shares one (0.25: four runs a GPU), "
        "above 1 whole GPUs",
    )

    @field_validator("gpus_per_run")
    @classmethod
    def _whole_gpus(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(
                "a fraction of a GPU must be below 1 (Ray's rule): above 1, whole GPUs"
            )
        return v
