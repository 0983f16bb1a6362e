"""The long-gap tasks: pure functions of (parameters, distance, seed).

Throughout the project **distance** is the number of time steps from the input step that carries
the needed information (the *key step*) to the output step that is scored on it (the *scored
step*): ``distance = scored_step - key_step``. Each task below says how its classic parameter maps
onto distance.

Every generator draws from its own ``torch.Generator`` (never global random state), is vectorised
over samples, and returns ``(x, y)`` in a compact dtype. Each task also knows its loss, its
accuracy, its chance accuracy and the loss of the best model with no memory (``baseline_loss``),
so training and reports share one definition of each; and, for the data stage, how many distinct
inputs it can draw at a distance (``sequence_space``) and the memory a draw takes
(``generate_bytes``).
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from pipeline.tasks.adding import ADDING_VARIANTS, Adding, AddingConfig
from pipeline.tasks.common import TaskConfig, generator, stream_seed
from pipeline.tasks.copy import Copy, CopyConfig
from pipeline.tasks.recall import FILLER, PAIRS, PREFIX, QUERY, Recall, RecallConfig

# the registry: a new task is a file (its generator and config) and a line here
CONFIGS = (RecallConfig, CopyConfig, AddingConfig)

Task = Recall | Copy | Adding
TASKS: dict[str, type[Task]] = {c.GENERATOR.name: c.GENERATOR for c in CONFIGS}
# the type of a task field (an experiment's tasks, a run's task): the config its ``task`` names
TaskField = Annotated[Union[CONFIGS], Field(discriminator="task")]  # noqa: UP007

__all__ = [
    "ADDING_VARIANTS", "CONFIGS", "FILLER", "PAIRS", "PREFIX", "QUERY", "TASKS", "Adding",
    "AddingConfig", "Copy", "CopyConfig", "Recall", "RecallConfig", "Task", "TaskConfig",
    "TaskField", "generator", "stream_seed",
]  # fmt: skip
