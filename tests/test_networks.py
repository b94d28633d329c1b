"""Sharing inside torch modules: the tying parametrization, the tied inner problem
(TiedNetworkProblem), the built-in SequenceNetwork, and the relaxation's implicit data term."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from sharelearn.hypergrad import implicit_hypergradient
from sharelearn.models.module import ModuleModel
from sharelearn.networks import LOSS_FLOOR, SequenceNetwork, TiedNetworkProblem, tie_parameters
from sharelearn.networks.relaxed import ImplicitDataTerm
from sharelearn.penalties import data_term


class PositionwiseSum(nn.Module):
    """``y = v . sum_l relu(w_l x_l + b_l)``: a per-position weight of shape (L, hidden)."""

    def __init__(self, length=4, hidden=8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(length, hidden))
        self.bias = nn.Parameter(torch.zeros(length, hidden))
        self.out = nn.Linear(hidden, 1)

    def forward(self, X):
        return self.out(torch.relu(X[:, :, None] * self.weight + self.bias).sum(1))


def test_tie_parameters_shares_slices_and_keeps_the_class():
    net = PositionwiseSum(length=4, hidden=3)
    S = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    tie_parameters(net, {"weight": 0}, S)
    assert parametrize.is_parametrized(net, "weight")
    assert isinstance(net, PositionwiseSum)
    assert net.parametrizations.weight.original.shape == (2, 3)
    W = net.weight
    torch.testing.assert_close(W[0], W[2])
    torch.testing.assert_close(W[1], W[3])
    assert not torch.equal(W[0], W[1])


def test_tie_single_entries_with_axis_none():
    lin = nn.Linear(3, 2)
    tie_parameters(lin, {"weight": None}, torch.ones(6, 1))
    assert torch.unique(lin.weight.detach()).numel() == 1


def test_sequence_network_ties_its_per_position_layers():
    torch.manual_seed(0)
    net = SequenceNetwork(4, n_tokens=10, embedding_dim=6, hidden=3)
    X = torch.randint(0, 10, (5, 4))
    assert net(X).shape == (5, 1)
    S = torch.ones(4, 1)
    tie_parameters(net, {"position_weight": 0, "position_bias": 0}, S)
    W, b = net.position_weight.detach(), net.position_bias.detach()
    for i in range(1, 4):
        torch.testing.assert_close(W[i], W[0])
        torch.testing.assert_close(b[i], b[0])
    # one shared layer: the output does not depend on the order of the tokens
    torch.testing.assert_close(net(X), net(X.flip(1)))


@pytest.mark.parametrize("share", [{"weight": 0, "bias": 0}, {"weight": None}])
def test_item_gradients_are_the_gradients_of_the_untied_network(share):
    torch.manual_seed(0)
    net = PositionwiseSum(length=4, hidden=3)
    X = torch.randn(30, 4)
    y = X.sum(1, keepdim=True)
    n_items = 4 if share.get("weight") == 0 else 12
    labels = np.arange(n_items) % 2
    S = torch.as_tensor(np.eye(2)[labels], dtype=torch.float32)
    problem = TiedNetworkProblem(net, share, S, X, y, X, y, loss="mse")
    w = problem.initial_vector()
    w = w + 0.1 * torch.randn(w.shape)  # away from the group averages of the initialisation
    G = problem.item_gradients(w, S)
    # the same values, untied, in a plain copy of the module: autograd per item
    tied = problem.load(w, S)
    plain = PositionwiseSum(length=4, hidden=3)
    with torch.no_grad():
        plain.weight.copy_(tied.weight)
        plain.bias.copy_(tied.bias)
        plain.out.load_state_dict(tied.out.state_dict())
    ((plain(X) - y) ** 2).mean().backward()
    if n_items == 4:
        expected = torch.cat([plain.weight.grad, plain.bias.grad], 1)
    else:
        expected = plain.weight.grad.reshape(-1, 1)
    torch.testing.assert_close(G, expected)
    # chain rule: a group's gradient in its shared value is the sum of its items' gradients
    w = w.requires_grad_(True)
    (grad,) = torch.autograd.grad(problem.train_loss(w, S), w)
    chunks = dict(zip(problem.names, torch.split(grad, problem.sizes), strict=True))
    shared = torch.cat([chunks[n].reshape(2, -1) for n in problem.shared_names], 1)
    torch.testing.assert_close(shared, S.T @ G)


@pytest.mark.parametrize("solver", ["exact", "cg"])
def test_implicit_data_term_backpropagates_the_implicit_hypergradient(solver):
    # a small prepared module model in float64; its relaxation's value as a function of logits
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    Y = (X * [1.0, -1.0, 1.0, -1.0]).sum(1, keepdims=True)
    torch.manual_seed(0)
    model = ModuleModel(
        PositionwiseSum(length=4, hidden=2), {}, {"weight": 0, "bias": 0}, loss="mse",
        weight_decay=1e-3, inner_steps=5, inner_learning_rate=0.01, hypergrad=solver,
        hypergrad_iter=10, neumann_alpha=0.01, search_steps=10, search_inits=1, max_epochs=1,
        patience=1, n_jobs=None, verbose=0)
    model.prepare(X, Y, (np.arange(25), np.arange(25, 40), None), dtype=torch.float64,
                  device=torch.device("cpu"), rng=np.random.RandomState(0), seed=0)
    logits = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    relaxation = model.relaxation(torch.softmax(logits, 1).detach()[None])
    S = torch.softmax(logits, 1)
    value = relaxation(S[None])
    assert value.shape == (1,)
    (grad,) = torch.autograd.grad(3.0 * value.sum(), logits)

    # the implicit hypergradient at the inner solution the forward pass left, called directly
    problem = relaxation.problem

    def outer(w, S_):
        return data_term(model.n_obs, problem.val_loss(w, S_), LOSS_FLOOR)

    S = torch.softmax(logits, 1)
    hypergradient, expected_value = implicit_hypergradient(
        problem.train_loss, outer, relaxation.w, S.detach(), solver, n_iter=10, alpha=0.01)
    assert float(value.detach()) == pytest.approx(expected_value, rel=1e-12)
    assert hypergradient.abs().max() > 0
    (expected,) = torch.autograd.grad(S, logits, 3.0 * hypergradient)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)

    # a leaf selection gets the hypergradient itself
    S_leaf = S.detach().requires_grad_(True)
    w_before = relaxation.w.detach().clone()
    ImplicitDataTerm.apply(S_leaf, relaxation).backward()
    assert not torch.equal(relaxation.w.detach(), w_before)  # the forward trained further
    again, _ = implicit_hypergradient(problem.train_loss, outer, relaxation.w, S_leaf.detach(),
                                      solver, n_iter=10, alpha=0.01)
    torch.testing.assert_close(S_leaf.grad, again, rtol=1e-10, atol=1e-12)
