"""Symmetry groups and parameter-sharing schemes, both ways: group -> sharing -> group.

* :mod:`~sharelearn.symmetry.generators`: named generating sets and :func:`sharing_from_group`;
* :mod:`~sharelearn.symmetry.convolution`: :func:`shift_sharing`, the sharing of a convolution;
* :mod:`~sharelearn.symmetry.wallpaper`: :func:`image_group_generators`, the wallpaper groups of
  an image torus and the point groups of an image, and how they are recognised;
* :mod:`~sharelearn.symmetry.structure`: :func:`describe_sharing`, a sharing read as a
  convolution with its kernel, grid and borders, and :func:`border_sharing`, the sharing of
  scipy.ndimage's border modes;
* :mod:`~sharelearn.symmetry.group`: :func:`symmetry_group`, :class:`SymmetryGroup`,
  :func:`named_sharing`;
* :mod:`~sharelearn.symmetry.naming` and :mod:`~sharelearn.symmetry._graph`: how groups are
  named and found (bliss through ``igraph``).

What the group of a sharing means and how it behaves is explained in :doc:`/symmetry`.
"""

from .convolution import border_hypotheses, convolution_reading, shift_hypotheses, shift_sharing
from .generators import (
    cyclic_shift_generators,
    dihedral_generators,
    permutation_generators,
    reflection_generators,
    rotation_generators,
    sharing_from_group,
)
from .group import SymmetryGroup, named_sharing, symmetry_group
from .structure import MAX_KERNEL, SharingStructure, border_sharing, describe_sharing
from .wallpaper import image_group_generators, image_group_hypotheses

__all__ = [
    "MAX_KERNEL",
    "SharingStructure",
    "border_hypotheses",
    "border_sharing",
    "convolution_reading",
    "describe_sharing",
    "named_sharing",
    "SymmetryGroup",
    "cyclic_shift_generators",
    "dihedral_generators",
    "image_group_generators",
    "image_group_hypotheses",
    "permutation_generators",
    "reflection_generators",
    "rotation_generators",
    "sharing_from_group",
    "shift_hypotheses",
    "shift_sharing",
    "symmetry_group",
]
