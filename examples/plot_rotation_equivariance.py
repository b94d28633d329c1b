"""
Discovering rotation equivariance in images
===========================================

A circular 3 x 3 convolution on 6 x 6 images is equivariant to the translations of the image
torus. If its kernel is also symmetric under the square's rotations and reflections,
``[[a, b, a], [b, c, b], [a, b, a]]``, the layer is equivariant to 90-degree rotations and
reflections as well: the wallpaper group ``p4m`` on the 6 x 6 torus, of order 36 x 8 = 288.
Here the sharing is discovered from samples of the layer, and its symmetry is named; a kernel
without those symmetries gives the translations alone, ``p1``.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

from sharelearn import SharingDiscoverer, partition_distance
from sharelearn.datasets import make_convolution
from sharelearn.plotting import SharingDisplay

QUICK = os.environ.get("SHARELEARN_EXAMPLES_QUICK") == "1"
n_restarts = 1 if QUICK else "auto"

# %%
# A rotation- and reflection-symmetric kernel: three values (``a = 1``, ``b = 2``, ``c = 4``)
# and the structural zeros, four groups on the 36 x 36 weight matrix.
symmetric = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
X, Y, _, W = make_convolution(200, input_shape=(6, 6), kernel_size=3, mode="circular",
                              kernel=symmetric, noise=0.1, random_state=0)
# the true sharing follows the values: equal taps are one group
truth = np.unique(W, return_inverse=True)[1].ravel()
rotations = SharingDiscoverer(model="linear", n_restarts=n_restarts, random_state=0).fit(X, Y)
group = rotations.symmetry_group_
print(f"symmetric kernel: {rotations.n_groups_} groups, partition distance "
      f"{partition_distance(rotations.sharing_partition_, truth)}")
print(f"  discovered symmetry: {group.name} (order {group.order})")
print(" ", group.describe())

# %%
# The same layer with the kernel ``1, 3, ..., 17`` (all taps different): nothing but the
# translations keeps it, ten groups (nine taps and the zeros).
X, Y, truth_p1, W_p1 = make_convolution(200, input_shape=(6, 6), kernel_size=3,
                                        mode="circular", noise=0.1, random_state=0)
shifts = SharingDiscoverer(model="linear", n_restarts=n_restarts, random_state=0).fit(X, Y)
print(f"plain kernel: {shifts.n_groups_} groups, partition distance "
      f"{partition_distance(shifts.sharing_partition_, truth_p1)}")
print(f"  discovered symmetry: {shifts.symmetry_group_.name} "
      f"(order {shifts.symmetry_group_.order})")

# %%
# The two discovered sharings on the 36 x 36 weight matrices (outputs as rows, inputs as
# columns, both images flattened row by row). Each output's row holds its 3 x 3 neighbourhood
# around the torus; with the symmetric kernel the four edge neighbours share one colour and the
# four corners another, whatever the direction: that is what a rotation by 90 degrees or a
# reflection of both images leaves unchanged.
fig, axes = plt.subplots(1, 2, figsize=(10, 5), layout="constrained")
SharingDisplay.from_estimator(rotations, ax=axes[0], show_soft=False,
                              name=rotations.symmetry_group_.name)
SharingDisplay.from_estimator(shifts, ax=axes[1], show_soft=False,
                              name=shifts.symmetry_group_.name)

# %%
# One output's row, read back as an image: output pixel (0, 0) weighs the 3 x 3 patch at the top
# left of the input. The discovered kernel is symmetric under the square's rotations and
# reflections.
kernel = rotations.coef_[0].reshape(6, 6)[:3, :3]
print("discovered 3 x 3 kernel:\n", kernel.round(2))
fig, ax = plt.subplots(figsize=(3, 3), layout="constrained")
ax.imshow(kernel, cmap="viridis")
ax.set_title("discovered 3 x 3 kernel")
ax.set_xticks([])
ax.set_yticks([])
plt.show()
