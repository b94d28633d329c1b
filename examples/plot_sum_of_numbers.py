"""
Permutation invariance on sum of numbers
========================================

The paper's network experiment. Each sample is a sequence of digits and the target is their sum:
a function that does not depend on the order of the digits. The network embeds each digit, applies
one linear layer *per position*, sums over positions and reads out. Whether the per-position
layers should be one shared layer (a Deep Sets network, invariant to permutations) is learned from
the data by ``NetworkSharingDiscoverer("sequence")``. With alternating signs
(``d0 - d1 + d2 - ...``) the positions fall into two groups instead.
"""

import os

import matplotlib.pyplot as plt

from sharelearn import NetworkSharingDiscoverer, partition_distance
from sharelearn.datasets import make_sum_of_numbers
from sharelearn.plotting import SharingDisplay

QUICK = os.environ.get("SHARELEARN_EXAMPLES_QUICK") == "1"
# the paper's sizes (embedding 500, hidden 50); the quick mode of the tests uses a small network
# and shorter training
sizes = dict(module__embedding_dim=16, module__hidden=8, max_iter=20, search_steps=100,
             max_epochs=100) if QUICK else {}
length = 4

# %%
# 500 sequences: 250 for early stopping of the final refit (``validation_fraction=0.5``), and of
# the others 100 to train and 150 to validate the sharing (``cv=0.6``), as in the paper.
fits = {}
for variant in ("shared", "alternating"):
    X, y, truth = make_sum_of_numbers(500, length=length, variant=variant, random_state=0)
    disc = NetworkSharingDiscoverer("sequence", cv=0.6, validation_fraction=0.5,
                                    dtype="float32", random_state=0, **sizes).fit(X, y)
    fits[variant] = (disc, truth)
    print(f"{variant:>11}: found {disc.sharing_partition_.tolist()}, truth {truth.tolist()}, "
          f"partition distance {partition_distance(disc.sharing_partition_, truth)}")

# %%
# The fitted network with its hard sharing is an ordinary torch module.
net = fits["shared"][0].to_module()
print("to_module():", type(net).__name__, "with", sum(p.numel() for p in net.parameters()),
      "parameters")

# %%
# The discovered sharing of the positions beside the truth: one colour per group.
fig, axes = plt.subplots(2, 1, figsize=(5, 3), layout="constrained")
for ax, (variant, (disc, truth)) in zip(axes, fits.items(), strict=True):
    SharingDisplay.from_partition(disc.sharing_partition_, (1, length), reference=truth, ax=ax,
                                  name=variant)
plt.show()
