"""
A convolution discovered inside a dense layer, on real images
=============================================================

A network's first layer is a dense ``64 -> 36`` matrix over the 8 x 8 digits of scikit-learn.
Nothing says it should be a convolution; yet the targets were made by a teacher network whose
first layer is a 3 x 3 convolution with random taps (then ReLU and a random read-out, plus
noise). ``NetworkSharingDiscoverer`` with ``share={"dense.weight": None}`` makes each of the
2,304 entries an item, and finds which of them the data tie together: the 9 taps of the
convolution, each shared by 36 entries, and one group of structural zeros.

How it is found at this size (see :mod:`sharelearn.search.linearised`): the readings of the
matrix as convolutions are scored by retraining the network tied by each, the best one starts
the search, and each round of the search proposes a partition from the network linearised in
its entries (a closed-form search) and keeps it only if a retrain confirms it.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from sharelearn import NetworkSharingDiscoverer, partition_distance
from sharelearn.plotting import SharingDisplay
from sharelearn.symmetry import convolution_reading, shift_sharing

QUICK = os.environ.get("SHARELEARN_EXAMPLES_QUICK") == "1"

# %%
# Real inputs, a known truth: the digits, each pixel standardised, and a teacher network
# whose first layer is a valid 3 x 3 convolution (8 x 8 -> 6 x 6).
digits = load_digits().data
X = (digits - digits.mean(0)) / np.where(digits.std(0) > 0, digits.std(0), 1.0)
rng = np.random.default_rng(0)
X = X[rng.permutation(len(X))]
truth = shift_sharing((8, 8), 3)  # labels of the 36 x 64 entries: 9 taps and the zeros
zero = np.bincount(truth).argmax()  # the structural zeros are the largest group
taps = rng.standard_normal(9)
W = np.insert(taps, zero, 0.0)[truth].reshape(36, 64)
clean = np.maximum(X @ W.T, 0) @ (rng.standard_normal(36) / 6)
y = clean + 0.1 * clean.std() * rng.standard_normal(len(clean))
n = 500 if QUICK else 1500


class Student(nn.Module):
    """The teacher's architecture with a dense first layer."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(64, 36, bias=False)
        self.out = nn.Linear(36, 1)

    def forward(self, x):
        return self.out(torch.relu(self.dense(x)))


# %%
# Every entry of the dense matrix is an item.
start = time.perf_counter()
disc = NetworkSharingDiscoverer(Student, share={"dense.weight": None}, loss="mse",
                                random_state=0).fit(X[:n], y[:n])
print(f"{disc.n_groups_} groups of 2304 entries, partition distance "
      f"{partition_distance(disc.sharing_partition_, truth)} "
      f"({time.perf_counter() - start:.0f} s)")
print("read as:", convolution_reading(disc.sharing_partition_, (36, 64)))
test_mse = np.mean((disc.predict(X[n:]) - y[n:]) ** 2) / np.var(y[n:])
print(f"test error of the discovered network: {test_mse:.3f} of the targets' variance")

# %%
# The discovered sharing of the 36 x 64 matrix beside the teacher's (the colours of matched
# groups agree), and the shared values of the 9 taps beside the teacher's kernel. A ReLU
# network may rescale its first layer by any positive factor (the read-out undoes it), so the
# taps are compared after scaling both to unit norm.
net = disc.to_module()
shared = net.dense.parametrizations.weight.original.detach().numpy()  # one value per group
tap_labels = [t for t in range(10) if t != zero]
found_taps = np.array([shared[disc.sharing_partition_[truth == t][0]] for t in tap_labels])
fig, axes = plt.subplots(1, 4, figsize=(11, 3.2), layout="constrained",
                         gridspec_kw={"width_ratios": [2.2, 2.2, 1, 1]})
SharingDisplay.from_partition(disc.sharing_partition_, (36, 64), reference=truth,
                              ax=axes[:2], name="discovered")
for ax, kernel, title in ((axes[2], taps, "teacher's taps"),
                          (axes[3], found_taps, "discovered taps")):
    ax.imshow((kernel / np.linalg.norm(kernel)).reshape(3, 3), cmap="RdBu_r", vmin=-0.8,
              vmax=0.8)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
