"""The validated building blocks every section of an experiment file shares (``config``,
``claims``): a frozen model that refuses unknown keys and non-finite numbers, and a number that
also accepts YAML's numeric strings.
"""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StrictInt


class Frozen(BaseModel):
    # allow_inf_nan: nan, inf and YAML's .inf are refused wherever a number is accepted
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


def _number(value: object) -> object:
    """Floats accept numbers and numeric strings (YAML reads ``3e-3`` as a string), not booleans."""
    if isinstance(value, bool):
        raise ValueError("input should be a number, not a boolean")
    return value


Number = Annotated[float, BeforeValidator(_number)]


# Upper bounds, each generous for the shipped experiments (full.yaml is paper-scale).
MAX_DISTANCE = 10_000  # over 13 times full.yaml's longest (750); data memory is checked apart
MAX_HIDDEN = 4096  # 32 times full.yaml's 128: an LSTM this wide has 134M weights, 2 GB to train
MAX_SEQUENCES = 10_000_000  # per split: 100 times full.yaml's training split
MAX_STEPS = 1_000_000  # 50 times full.yaml's 20000 updates: days of training at paper scale
# train.py seeds Lightning's global state with the run's seed, and seed_everything accepts
# 0..2**32 - 1 (numpy's range; torch.Generator.manual_seed accepts more)
MAX_SEED = 2**32 - 1
# far above any rate that trains these models (Adam's work near 1e-3, SGD's below 10), and high
# enough to make runs diverge on purpose (a test does, at 1e4)
MAX_LEARNING_RATE = 1e6
MAX_GRAD_CLIP = 1e6  # a clip norm no healthy gradient reaches never acts; null turns clipping off
MAX_FORGET_BIAS = 100.0  # sigma(17) is 1 in float32: past that, a larger bias changes nothing
MAX_PARAMETERS = 100_000_000  # a parameter budget: an LSTM of width MAX_HIDDEN has about 134M
# per run: the cores of a large node. Ray leaves a task that asks for more than any node holds
# pending forever, and a local run starts as many torch threads
MAX_CPUS = 256
MAX_GPUS = 8  # per run: the GPUs of one large node; Ray cannot spread a task across nodes
MAX_NAME = 64  # model names go into file names (255 bytes at most) and figure legends
# an experiment file lists settings, never data: the shipped ones hold a few KiB, and a file of
# many MiB is a mistake that YAML would take many seconds to read
MAX_FILE_BYTES = 2**20
# runs in one experiment, tuning included: 40 times full.yaml's 2464; each run leaves a result
# file and an MLflow run, and the report reads every one. Counted before any run is built
MAX_RUNS = 100_000


PositiveInt = Annotated[StrictInt, Field(ge=1)]
Distance = Annotated[StrictInt, Field(ge=1, le=MAX_DISTANCE)]
Distances = list[Distance]  # may be empty where a staircase finds the distances
HiddenSize = Annotated[StrictInt, Field(ge=1, le=MAX_HIDDEN)]
GateBias = Annotated[Number, Field(ge=-MAX_FORGET_BIAS, le=MAX_FORGET_BIAS)]  # forget or update


def number_or(word: str, low: float, high: float, integer: bool = False):
    """A validator for a field that takes a number in [low, high] or the word ``word``, with one
    message either way (pydantic's union would report each alternative separately).
    """

    def check(value):
        if value == word:
            return value
        kind = "an integer" if integer else "a number"
        ok = isinstance(value, int if integer else int | float) and not isinstance(value, bool)
        if isinstance(value, str) and not integer:
            try:
                value, ok = float(value), True
            except ValueError:
                ok = False
        if not ok or not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"input should be {kind} from {low:g} to {high:g}, or {word!r}")
        return value

    number = Annotated[StrictInt if integer else float, Field(ge=low, le=high)]
    return PlainValidator(check, json_schema_input_type=number | Literal[word])


Sequences = Annotated[StrictInt, Field(ge=1, le=MAX_SEQUENCES)]


def unique(values: list, what: str) -> list:
    """``values``, unless one repeats (ValueError naming the first that does); linear in the
    number of values where they can be hashed, so a long list is checked at once.
    """
    try:
        seen: set = set()
        for v in values:
            if v in seen:
                raise ValueError(f"duplicate {what} {v!r}")
            seen.add(v)
    except TypeError:  # an unhashable value (a list in a tuning grid): compare pairwise
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise ValueError(f"duplicate {what} {repeated[0]!r}") from None
    return values


def did_you_mean(word: str, choices) -> str:
    """`` did you mean learning_rate?`` for the choice closest to a misspelt ``word``, or ``""``
    where none is close.
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" did you mean {close[0]}?" if close else ""


def check_seeds(v: list[int]) -> list[int]:
    """Seeds are distinct, and within what Lightning's seed_everything accepts."""
    for s in v:
        if s < 0:
            raise ValueError(f"seed {s} is negative")
        if s > MAX_SEED:
            raise ValueError(
                f"seed {s} exceeds {MAX_SEED} (2**32 - 1), the largest seed Lightning's "
                "seed_everything accepts"
            )
    return unique(v, "seed")
