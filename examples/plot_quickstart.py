"""
Quickstart: discover shift sharing in a linear map
==================================================

A valid 1-D cross-correlation is a linear map whose weights are tied along shifts. Given only input
and output samples, :class:`sharelearn.SharingDiscoverer` recovers which weights are tied.
"""

from sharelearn import SharingDiscoverer, partition_distance
from sharelearn.datasets import make_convolution

X, Y, truth, W = make_convolution(150, input_shape=12, kernel_size=3, random_state=0)
disc = SharingDiscoverer(model="linear", random_state=0).fit(X, Y)

print("groups found:", disc.n_groups_)
print("shared values:", disc.shared_values_.round(3))
print("partition distance to the truth:", partition_distance(disc.sharing_partition_, truth))
print(disc.sharing_partition_.reshape(W.shape))
