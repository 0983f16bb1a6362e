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

from pipeline.tasks.adding import ADDING_VARIANTS, Adding
from pipeline.tasks.common import generator, stream_seed
from pipeline.tasks.copy import Copy
from pipeline.tasks.recall import FILLER, PAIRS, PREFIX, QUERY, Recall

Task = Recall | Copy | Adding
TASKS: dict[str, type[Task]] = {t.name: t for t in (Recall, Copy, Adding)}

__all__ = [
    "ADDING_VARIANTS", "FILLER", "PAIRS", "PREFIX", "QUERY", "TASKS", "Adding", "Copy", "Recall",
    "Task", "generator", "stream_seed",
]  # fmt: skip
