"""
Sharing inside your own torch module
====================================

Any ``torch.nn.Module`` can be handed to ``NetworkSharingDiscoverer``, with a declaration of
which of its parameters may be tied and along which axis. Here a small module applies its own
little layer to each of six real inputs and sums the results, so each input position has a
weight row and a bias row. The target is ``tanh(x0) - tanh(x1) + tanh(x2) - ...``: positions of
the same sign could share one layer, positions of opposite signs cannot. The discoverer finds
that grouping from 400 samples; the module class itself is never changed (the tying goes
through ``torch.nn.utils.parametrize``).
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from sharelearn import NetworkSharingDiscoverer, partition_distance
from sharelearn.plotting import SharingDisplay


class PositionwiseSum(nn.Module):
    """``y = v . sum_l relu(w_l x_l + b_l) + c``: one (weight, bias) row per input position."""

    def __init__(self, length=6, hidden=16):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(length, hidden))
        self.bias = nn.Parameter(torch.zeros(length, hidden))
        self.out = nn.Linear(hidden, 1)

    def forward(self, X):
        return self.out(torch.relu(X[:, :, None] * self.weight + self.bias).sum(1))


QUICK = os.environ.get("SHARELEARN_EXAMPLES_QUICK") == "1"
# the quick mode of the tests trains less
budget = dict(max_iter=10, search_steps=60, max_epochs=100) if QUICK else {}

# %%
# The data: six inputs, alternating signs, a little noise.
length = 6
rng = np.random.default_rng(0)
X = rng.standard_normal((400, length))
signs = np.array([1, -1] * (length // 2))
y = np.tanh(X) @ signs + 0.1 * rng.standard_normal(400)
truth = (signs < 0).astype(int)

# %%
# The module is passed as a class with its keyword arguments routed skorch-style
# (``module__length``), so a grid search can reach them. ``share`` says that the rows (axis 0)
# of ``weight`` and ``bias`` are the items to group; both are tied by the same partition.
disc = NetworkSharingDiscoverer(PositionwiseSum, share={"weight": 0, "bias": 0},
                                module__length=length, cv=0.6, validation_fraction=0.3,
                                dtype="float32", random_state=0, **budget).fit(X, y)
print(f"found {disc.sharing_partition_.tolist()}, truth {truth.tolist()}, "
      f"partition distance {partition_distance(disc.sharing_partition_, truth)}")

# %%
# ``to_module()`` returns the fitted network with its hard sharing, on the CPU. Its tied
# parameters store one row per group; training it further keeps the sharing.
net = disc.to_module()
print("stored weight rows:", tuple(net.parametrizations.weight.original.shape),
      "-> full weight:", tuple(net.weight.shape))
optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
Xt = torch.as_tensor(X, dtype=torch.float32)
yt = torch.as_tensor((y - disc.target_mean_[0]) / disc.target_scale_[0], dtype=torch.float32)
for _ in range(5):
    optimizer.zero_grad()
    loss = (net(Xt)[:, 0] - yt).abs().mean()
    loss.backward()
    optimizer.step()
same = torch.equal(net.weight[0], net.weight[2]) and torch.equal(net.weight[1], net.weight[3])
print("after further training, positions of one group still share their row:", same)

# %%
# The discovered grouping of the six positions beside the truth.
fig, ax = plt.subplots(figsize=(5, 1.6), layout="constrained")
SharingDisplay.from_partition(disc.sharing_partition_, (1, length), reference=truth, ax=ax,
                              name="positions")
plt.show()
