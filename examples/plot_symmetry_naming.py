"""
Naming the discovered symmetry
==============================

A sharing scheme determines the largest group of input and output permutations that the layer
is equivariant to. :attr:`SharingDiscoverer.symmetry_group_ <sharelearn.SharingDiscoverer>` finds
that group for the discovered sharing, with its exact order and a readable name. Two layers whose
symmetry is known: a circular convolution (the cyclic shifts) and a Deep Sets layer (every
permutation of a set).
"""

import os

import matplotlib.pyplot as plt
import numpy as np

from sharelearn import SharingDiscoverer, partition_distance
from sharelearn.datasets import make_convolution
from sharelearn.plotting import SharingDisplay
from sharelearn.symmetry import named_sharing, symmetry_group

QUICK = os.environ.get("SHARELEARN_EXAMPLES_QUICK") == "1"
n_restarts = 1 if QUICK else "auto"

# %%
# A circular convolution of 8 positions with a 3-tap kernel: 64 weights in 4 groups.
X, Y, conv_truth, _ = make_convolution(150, input_shape=8, kernel_size=3, mode="circular",
                                       random_state=0)
conv = SharingDiscoverer(model="linear", n_restarts=n_restarts, random_state=0).fit(X, Y)
print("circular convolution: partition distance",
      partition_distance(conv.sharing_partition_, conv_truth))
print("  discovered symmetry:", conv.symmetry_group_.name, "of order", conv.symmetry_group_.order)

# %%
# A Deep Sets layer on sets of 6: ``y = 2 x + 0.5 sum(x)``, one value on the diagonal and one off
# it. The estimator's ``reference="permutation"`` builds that sharing for the layer's shape.
rng = np.random.default_rng(0)
X = rng.standard_normal((150, 6))
W = 2.0 * np.eye(6) + 0.5
Y = X @ W.T + 0.1 * rng.standard_normal((150, 6))
sets = SharingDiscoverer(model="linear", reference="permutation", n_restarts=n_restarts,
                         random_state=0).fit(X, Y)
print("Deep Sets layer: partition distance", -sets.score(X))
print("  discovered symmetry:", sets.symmetry_group_.name, "of order", sets.symmetry_group_.order)

# %%
# The two discovered sharings. The convolution's wraps around the corners; every cyclic shift
# of outputs and inputs together maps it onto itself, and nothing else does: ``C_8``. The Deep
# Sets layer's is kept by any permutation applied to outputs and inputs alike: ``S_6``, of order
# ``6! = 720``.
fig, axes = plt.subplots(1, 2, figsize=(8, 4), layout="constrained")
conv_display = SharingDisplay.from_estimator(conv, ax=axes[0], name=conv.symmetry_group_.name)
sets_display = SharingDisplay.from_estimator(sets, ax=axes[1], name=sets.symmetry_group_.name)

# %%
# Going the other way, a name gives a sharing and the sharing gives the group back. A *valid*
# convolution has no symmetry as a finite layer: shifting moves its window off the end, so
# translation is only a partial symmetry.
for name, shape in [("shift", (6, 6)), ("shift", (4, 6)), ("permutation", (5, 5)),
                    ("shared", (3, 4))]:
    group = symmetry_group(named_sharing(name, shape), shape)
    print(f"{name:>11} on a {shape[0]} x {shape[1]} layer: {group.name} (order {group.order})")
plt.show()
