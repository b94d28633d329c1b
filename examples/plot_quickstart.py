"""
Quickstart: discover shift sharing in a linear map
==================================================

A valid 1-D cross-correlation is a linear map whose weights are tied along shifts. Given only input
and output samples, :class:`sharelearn.SharingDiscoverer` recovers which weights are tied.
"""

# %%
# Data: 150 samples of a cross-correlation with the kernel ``1, 3, 5`` plus noise. The map has
# 10 outputs and 12 inputs, 120 weights; the estimator is told nothing about their structure.
from sharelearn import SharingDiscoverer, partition_distance
from sharelearn.datasets import make_convolution

X, Y, truth, W = make_convolution(150, input_shape=12, kernel_size=3, random_state=0)
disc = SharingDiscoverer(model="linear", random_state=0).fit(X, Y)

print("groups found:", disc.n_groups_)
print("shared values:", disc.shared_values_.round(3))
print("partition distance to the truth:", partition_distance(disc.sharing_partition_, truth))
print(disc.sharing_partition_.reshape(W.shape))

# %%
# The discovered scheme drawn on the weight matrix, one colour per group with its shared value,
# beside the truth (coloured by the group it is matched with) and the soft selection of the
# winning relaxation (each row an item, each column a candidate group).
from sharelearn.plotting import SharingDisplay  # noqa: E402 (a cell of its own in the gallery)

display = SharingDisplay.from_estimator(disc, reference=truth)
