"""Length extrapolation: a trained model scored, forward only, at other distances than its own.
Models built by hand, whose answers are known, tell a model that learned where the key is from
one that learned how far back it lies.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline import config, data
from pipeline.config.runs import evaluation_runs, extrapolation_distance
from pipeline.tasks import PAIRS
from pipeline.train.run import evaluate, extrapolate

DISTANCE = 8
N_TEST = 1000  # sequences per factor: an accuracy of 1/4 within about 0.04 (three std. errors)


def recall_spec(n_test: int = N_TEST):
    exp = config.Experiment(
        name="extrapolation",
        tasks=[{"task": "recall", "distances": [DISTANCE], "n_keys": 4, "n_filler": 8}],
        models=[{"name": "rnn", "cell": "rnn"}],
        seeds=[0],
        data={"n_train": 512, "n_val": 128, "n_test": n_test},
        training={"batch_size": 64},
        probe={"batch_size": 32},
    )
    (spec,) = evaluation_runs(exp)
    return spec


class ReadsStep(nn.Module):
    """Recall by hand: the answer to the key token at step ``position`` of the input (counted
    from the end when negative), class 0 for any other token; one-hot logits ``[B, n_keys]``.
    """

    def __init__(self, spec, position: int) -> None:
        super().__init__()
        task = spec.task.build()
        to_class = torch.zeros(len(task.vocabulary), dtype=torch.long)
        for key, answer in PAIRS[: task.n_keys]:
            to_class[task.vocabulary.index(key)] = task.answers.index(answer)
        self.to_class, self.position, self.n_keys = to_class, position, task.n_keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(self.to_class[x[:, self.position].long()], self.n_keys).float()


def own_distance_accuracy(spec, model) -> float:
    task = spec.task.build()
    fresh = data.extrapolation_split(spec.task, spec.distance, spec.seed, spec.data.n_test)
    return evaluate(model, task, fresh, "cpu")[1]


def test_a_model_that_counts_steps_back_solves_only_at_its_own_distance():
    """Reading the token ``distance + 1`` steps before the end is the key at the training
    distance, a filler word at twice and four times it: chance there (1/4), however perfect at
    its own length.
    """
    spec = recall_spec()
    counts_back = ReadsStep(spec, position=-(DISTANCE + 1))
    assert own_distance_accuracy(spec, counts_back) == 1.0
    scored = extrapolate(spec, counts_back, "cpu")
    assert sorted(scored) == ["0.5", "2", "4"]
    for label in ("2", "4"):
        assert scored[label].chance_accuracy == 0.25
        assert scored[label].accuracy == pytest.approx(0.25, abs=0.05), label
    assert scored["0.5"].accuracy < 0.5  # the sequence's first step: "i", no key
    assert [scored[k].distance for k in ("0.5", "2", "4")] == [4, 16, 32]
    assert all(s.n == N_TEST for s in scored.values())


def test_a_model_that_reads_where_the_key_always_is_holds_at_every_distance():
    """The key of recall sits at the same step (after ``i grew up in``) at every distance."""
    spec = recall_spec()
    scored = extrapolate(spec, ReadsStep(spec, position=4), "cpu")
    assert {label: s.accuracy for label, s in scored.items()} == {"0.5": 1.0, "2": 1.0, "4": 1.0}
    assert all(s.loss is not None and s.loss < 1.0 for s in scored.values())


def test_extrapolation_distances_round_half_up_and_keep_to_the_task():
    assert extrapolation_distance(5, 0.5, 3) == 3  # 2.5 rounds up
    assert extrapolation_distance(7, 0.5, 3) == 4  # 3.5 rounds up
    assert extrapolation_distance(6, 4.0, 3) == 24
    assert extrapolation_distance(4, 0.5, 3) == 3  # 2 is below recall's minimum
    # half of 3 comes out as recall's minimum, 3 itself (a run the data stage would refuse at
    # this size: only its distance matters here)
    spec = recall_spec(n_test=8).model_copy(update={"distance": 3})
    assert sorted(extrapolate(spec, ReadsStep(spec, position=4), "cpu")) == ["2", "4"]


def test_the_extrapolation_set_is_fresh_data_of_a_distance_and_a_seed():
    spec = recall_spec(n_test=64)
    task = spec.task.build()
    once = data.extrapolation_split(spec.task, 16, 0, 64)
    again = data.extrapolation_split(spec.task, 16, 0, 64)
    assert torch.equal(once.x, again.x) and torch.equal(once.y, again.y)  # a pure function
    assert once.x.shape == (64, task.length(16))  # longer than any sequence trained at 8
    assert not torch.equal(once.x, data.extrapolation_split(spec.task, 16, 1, 64).x)
    splits = data.generate(spec.task, 16, 0, {"train": 64, "test": 64})
    assert not any(torch.equal(once.x, split.x) for split in splits.values())  # its own stream
