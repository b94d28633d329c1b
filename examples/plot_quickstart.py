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
disc = SharingDiscoverer(random_state=0).fit(X, Y)  # Y is given: model="auto" fits a linear map

print("model fitted:", disc.model_)
print("groups found:", disc.n_groups_)
print("shared values:", disc.shared_values_.round(3))
print("partition distance to the truth:", partition_distance(disc.sharing_partition_, truth))
print(disc.sharing_partition_.reshape(W.shape))

# %%
# What was found, in the field's words, and its symmetry group: the map is a valid
# convolution, whose group is trivial (a shift would move the kernel off the ends).
print("structure:", disc.structure_)
print("symmetry:", disc.symmetry_group_.name)

# %%
# The discovered scheme drawn on the weight matrix, one colour per group with its shared value;
# beside it the kernel it reads as (each tap in its group's colour, with its value and group),
# the truth (coloured by the group it is matched with) and, when a relaxation ran, its soft
# selection (each row an item, each column a candidate group).
from sharelearn.plotting import SharingDisplay  # noqa: E402 (a cell of its own in the gallery)

display = SharingDisplay.from_estimator(disc, reference=truth)
