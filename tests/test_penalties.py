"""The penalties (sharelearn.penalties): each soft value equals its hard value at a one-hot
selection, and the search's deltas follow from the per-group cost."""

import numpy as np
import pytest
import torch

from sharelearn.partition import labels_to_selection
from sharelearn.penalties import (
    CodeLength,
    ColumnNorm,
    NuclearNorm,
    Penalties,
    Penalty,
    RowEntropy,
    data_term,
)

PENALTIES = [NuclearNorm(), ColumnNorm(), CodeLength(), RowEntropy()]
PARTITIONS = [np.zeros(7, int), np.arange(7), np.array([0, 0, 1, 2, 1, 0, 3]),
              np.array([0, 1, 1, 1, 1, 1, 1])]


def test_every_penalty_class_is_covered():
    assert {type(p) for p in PENALTIES} == set(_subclasses(Penalty))


def _subclasses(cls):
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


@pytest.mark.parametrize("penalty", PENALTIES, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("labels", PARTITIONS, ids=range(len(PARTITIONS)))
@pytest.mark.parametrize("spare", [0, 2])
def test_soft_value_at_a_one_hot_selection_equals_the_hard_value(penalty, labels, spare):
    S = torch.as_tensor(labels_to_selection(labels, sparse=False), dtype=torch.float64)
    S = torch.cat([S, torch.zeros(S.shape[0], spare, dtype=torch.float64)], 1)  # empty columns
    sizes = S.sum(0)
    hard = penalty.size_cost(sizes, labels.size).sum()
    assert float(penalty.soft(S)) == pytest.approx(float(hard), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("penalty", PENALTIES, ids=lambda p: type(p).__name__)
def test_soft_values_of_a_batch_are_those_of_each_matrix(penalty):
    gen = torch.Generator().manual_seed(0)
    S = torch.softmax(torch.randn(3, 6, 4, generator=gen, dtype=torch.float64), -1)
    batch = penalty.soft(S)
    assert batch.shape == (3,)
    for i in range(3):
        assert float(batch[i]) == pytest.approx(float(penalty.soft(S[i])), rel=1e-12)


def test_weights_combine_and_zero_weights_drop_out():
    penalties = Penalties.from_params(nuclear=2.0, code_length=0.0, entropy=0.5)
    assert [type(p) for _, p in penalties.terms] == [NuclearNorm, RowEntropy]
    labels = PARTITIONS[2]
    sizes = torch.as_tensor(np.bincount(labels), dtype=torch.float64)
    assert penalties.of_labels(labels) == pytest.approx(2.0 * float(torch.sqrt(sizes).sum()))
    assert Penalties.from_params(nuclear=1.0, nuclear_kind="column").weight(ColumnNorm) == 1.0


def test_a_move_changes_the_hard_value_by_the_size_costs_alone():
    penalties = Penalties.from_params(nuclear=2.0, code_length=2.0)
    labels = PARTITIONS[2]
    moved = labels.copy()
    moved[0] = 2  # from group 0 (size 3) to group 2 (size 1)
    f = lambda s: float(penalties.size_cost(torch.tensor([float(s)]), labels.size)[0])  # noqa: E731
    delta = f(2) - f(3) + f(2) - f(1)
    assert penalties.of_labels(moved) - penalties.of_labels(labels) == pytest.approx(delta)


def test_the_data_term_is_clamped_at_its_floor_for_tensors_and_floats():
    assert data_term(10, 0.0, 1e-12) == pytest.approx(10 * np.log(1e-12))
    value = data_term(10, torch.tensor([0.0, 2.0], dtype=torch.float64), 1e-12)
    np.testing.assert_allclose(value.numpy(), [10 * np.log(1e-12), 10 * np.log(2.0)])
