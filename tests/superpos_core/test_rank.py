import numpy as np
import pytest
import torch
from torch import nn

from superpos_core import rank


def test_hand_computed_matrix():
    # Singular values 3, 2, 1 (rotations do not change them): squares 9, 4, 1 of 14,
    # cumulative shares 9/14 = 0.643, 13/14 = 0.929, 1.
    q1, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    q2, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    matrix = q1 @ np.diag([3.0, 2.0, 1.0]) @ q2
    values = rank.singular_values(matrix)
    np.testing.assert_allclose(values, [3, 2, 1])
    np.testing.assert_allclose(rank.energy_share(values), [9 / 14, 13 / 14, 1.0])
    assert rank.effective_rank(values, 0.99) == 2  # the course's count: shares still below 99%
    assert rank.rank_to_reach(values, 0.99) == 3  # needed to reach 99%: one more
    assert rank.effective_rank(values, 0.9) == 1
    assert rank.rank_to_reach(values, 0.9) == 2
    # On the threshold exactly, "still below" excludes it and "needed to reach" includes it.
    exact = np.array([3.0, 2.0, 1.0])  # exact values, so the share is 13/14 to the last bit
    assert rank.effective_rank(exact, 13 / 14) == 1
    assert rank.rank_to_reach(exact, 13 / 14) == 2


def test_matches_course_formula_on_random_matrices():
    rng = np.random.default_rng(3)
    for _ in range(5):
        matrix = rng.normal(size=(40, 90)) * rng.uniform(0.1, 3, size=(40, 1))
        s = np.linalg.svd(matrix, compute_uv=False)
        cumvar = np.cumsum(s**2) / np.sum(s**2)
        assert rank.effective_rank(s) == np.sum(cumvar < 0.99)


def test_summary_and_torch_input():
    summary = rank.summarize(torch.eye(4) * torch.tensor([[4.0], [3.0], [2.0], [1.0]]))
    assert summary.size == 4
    assert summary.effective_rank == 3 and summary.rank_to_reach == 4
    assert summary.ratio == pytest.approx(0.75)


def test_bad_threshold_and_shape():
    with pytest.raises(ValueError):
        rank.effective_rank(np.ones(3), 0.0)
    with pytest.raises(ValueError):
        rank.singular_values(np.ones(3))


def test_random_baseline_is_exactly_pytorch_linear_init():
    torch.manual_seed(7)
    layer = nn.Linear(784, 128)
    ours = rank.pytorch_linear_init(128, 784, torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours, layer.weight.detach())
    baseline = rank.random_baseline((128, 784), seed=7)
    np.testing.assert_allclose(
        baseline.singular_values, np.linalg.svd(layer.weight.detach().double().numpy(), compute_uv=False)
    )
    # A random 128x784 layer spreads its energy evenly: almost full effective rank.
    assert baseline.effective_rank > 115
