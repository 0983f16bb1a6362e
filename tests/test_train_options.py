"""The training options a run's optimizer step follows: how gradients are clipped (by norm or
element-wise, the pre-clip norm recorded either way) and RMSprop's decay.
"""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.config.training import TrainingConfig
from pipeline.train.module import clip_gradients, make_optimizer


def with_grads(*grads: list[float]) -> list[torch.nn.Parameter]:
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros(len(g)))
        p.grad = torch.tensor(g)
        params.append(p)
    return params


def test_value_clipping_clamps_each_element_and_returns_the_norm_before():
    params = with_grads([3.0, -0.5], [-4.0])
    norm = clip_gradients(params, TrainingConfig(grad_clip=1.0, clip_mode="value"))
    assert norm.item() == pytest.approx(math.sqrt(9 + 0.25 + 16))
    assert params[0].grad.tolist() == [1.0, -0.5] and params[1].grad.tolist() == [-1.0]


def test_norm_clipping_scales_the_whole_gradient_and_returns_the_norm_before():
    params = with_grads([3.0, 0.0], [-4.0])
    norm = clip_gradients(params, TrainingConfig(grad_clip=1.0))
    assert norm.item() == pytest.approx(5.0)
    assert params[0].grad.tolist() == pytest.approx([0.6, 0.0], rel=1e-5)
    assert params[1].grad.tolist() == pytest.approx([-0.8], rel=1e-5)


def test_no_clipping_leaves_the_gradient_and_still_measures_it():
    params = with_grads([3.0, 0.0], [-4.0])
    norm = clip_gradients(params, TrainingConfig(grad_clip=None))
    assert norm.item() == pytest.approx(5.0)
    assert params[0].grad.tolist() == [3.0, 0.0] and params[1].grad.tolist() == [-4.0]


def test_rmsprop_takes_its_decay():
    params = with_grads([1.0])
    decayed = make_optimizer(TrainingConfig(optimizer="rmsprop", rmsprop_decay=0.9), params)
    assert decayed.param_groups[0]["alpha"] == 0.9
    plain = make_optimizer(TrainingConfig(optimizer="rmsprop"), params)
    assert plain.param_groups[0]["alpha"] == 0.99  # PyTorch's own
    assert isinstance(make_optimizer(TrainingConfig(), params), torch.optim.Adam)
