"""
Recovering shift in 1-D and 2-D
===============================

A convolution ties every weight of its dense matrix to the kernel tap that lands on it; the
entries no tap reaches (the structural zeros) form one more group. Recovering that partition
from input and output samples discovers shift equivariance. The paper states exact recovery on
6- and 15-entry problems; here are a 1-D map of 16 inputs (224 entries) and a 2-D map on
5 x 5 images (225 entries), both with a 3-tap (3 x 3) kernel.
"""

import os

import matplotlib.pyplot as plt

from sharelearn import SharingDiscoverer, partition_distance
from sharelearn.datasets import make_convolution
from sharelearn.plotting import SharingDisplay

QUICK = os.environ.get("SHARELEARN_EXAMPLES_QUICK") == "1"
# Quick runs (the test suite) use one relaxation restart; the search from the shared partition
# does the work on problems this small.
n_restarts = 1 if QUICK else "auto"

# %%
# 1-D: valid cross-correlation, 16 inputs, kernel ``1, 3, 5``.
X, Y, truth, W = make_convolution(150, input_shape=16, kernel_size=3, random_state=0)
disc = SharingDiscoverer(model="linear", n_restarts=n_restarts, random_state=0).fit(X, Y)
print(f"1-D: {W.size} entries, {disc.n_groups_} groups, partition distance "
      f"{partition_distance(disc.sharing_partition_, truth)}")
display = SharingDisplay.from_estimator(disc, reference=truth, show_soft=False)

# %%
# 2-D: valid cross-correlation on 5 x 5 images with a 3 x 3 kernel (values ``1, 3, ..., 17``).
# The 9 outputs and 25 inputs are flattened row-major, so each output's row of the weight matrix
# holds a 3 x 3 patch of the image: the nine taps sit in three bands of three.
X, Y, truth, W = make_convolution(300, input_shape=(5, 5), kernel_size=3, random_state=0)
disc = SharingDiscoverer(model="linear", n_restarts=n_restarts, random_state=0).fit(X, Y)
print(f"2-D: {W.size} entries, {disc.n_groups_} groups, partition distance "
      f"{partition_distance(disc.sharing_partition_, truth)}")
display = SharingDisplay.from_estimator(disc, reference=truth, show_soft=False)

# %%
# The discovered kernel, read off one output's row: output 0 sees the top-left 3 x 3 patch.
kernel = disc.coef_[0].reshape(5, 5)[:3, :3]
print("discovered 3 x 3 kernel:\n", kernel.round(2))
plt.show()
