"""The symmetry group of a sharing scheme, and the named sharings of the estimator.

The group of a partition of the ``n_out x n_in`` weight entries is every pair ``(p_out, p_in)``
with ``label[p_out[o], p_in[i]] == label[o, i]`` for every entry: the automorphisms of the
bipartite graph of the layer, with edges coloured by group, that keep outputs and inputs apart and
never permute the colours. It is the *largest* group the sharing is equivariant to; see
:doc:`/symmetry` for what follows from that, :mod:`sharelearn.symmetry._graph` for how it is
computed and :mod:`sharelearn.symmetry.naming` for the names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..partition import _as_labels
from ._graph import _LayerGraph
from .convolution import shift_sharing
from .generators import _check_layer_shape, permutation_generators, sharing_from_group
from .naming import _format_name, _Namer

__all__ = ["SymmetryGroup", "named_sharing", "symmetry_group"]


@dataclass(eq=False)
class SymmetryGroup:
    """The symmetry group of a sharing scheme, as found by :func:`symmetry_group`.

    Attributes
    ----------
    order : int
        Exact number of elements (a Python int; ``100!`` and beyond are fine).
    generators : list of (ndarray, ndarray)
        ``(out_perm, in_perm)`` pairs generating the group (none for the trivial group);
        ``perm[i]`` is the image of ``i``.
    name : str
        Readable name, e.g. ``"trivial"``, ``"C_100"``, ``"D_4"``, ``"S_100 x S_100"``.
    shape : tuple of int
        ``(n_out, n_in)`` of the layer.
    """

    order: int
    generators: list
    name: str
    shape: tuple

    def __repr__(self):
        return (
            f"SymmetryGroup(name={self.name!r}, order={self.order}, "
            f"n_generators={len(self.generators)}, shape={self.shape})"
        )

    def sharing(self):
        """Orbit partition of the group (canonical labels), see :func:`sharing_from_group`.

        It refines the partition the group was computed from (every orbit lies inside one of
        its groups) and equals it when that partition is itself an orbit partition.

        Examples
        --------
        A circular convolution with kernel 2 on 5 positions: the group ``C_5`` keeps the two
        taps and splits the zero group into the three offsets it merges.

        >>> from sharelearn.symmetry import shift_sharing, symmetry_group
        >>> labels = shift_sharing(5, 2, "circular")
        >>> labels.reshape(5, 5)[0], symmetry_group(labels, (5, 5)).sharing().reshape(5, 5)[0]
        (array([0, 1, 2, 2, 2]), array([0, 1, 2, 3, 4]))
        """
        return sharing_from_group(self.generators, self.shape)

    def as_permutation_group(self):
        """The group as a ``sympy.combinatorics.PermutationGroup`` on ``n_out + n_in`` points.

        Points ``0..n_out-1`` are the outputs, ``n_out..n_out+n_in-1`` the inputs. Meant for
        further group arithmetic on small groups: sympy's Schreier-Sims is slow on large ones.

        Examples
        --------
        >>> from sharelearn.symmetry import shift_sharing, symmetry_group
        >>> group = symmetry_group(shift_sharing(4, 3, "circular"), (4, 4))
        >>> group.as_permutation_group().is_cyclic
        True
        """
        from sympy.combinatorics import Permutation, PermutationGroup

        n_out, n_in = self.shape
        if not self.generators:
            return PermutationGroup([Permutation(n_out + n_in - 1)])
        perms = [
            Permutation(np.concatenate([p_out, n_out + p_in]).tolist())
            for p_out, p_in in self.generators
        ]
        return PermutationGroup(perms)


def symmetry_group(partition, shape):
    """The largest group of output and input permutations that keeps a sharing scheme.

    A pair ``(p_out, p_in)`` belongs to the group when every entry ``(o, i)`` and its image
    ``(p_out[o], p_in[i])`` are in the same group of ``partition``: the colour-preserving
    automorphisms of the bipartite graph of the layer (see the module docstring for the
    semantics, the bliss encoding and the naming rules). A linear layer whose weights follow
    the sharing is equivariant to every element of the group.

    Parameters
    ----------
    partition : array-like of shape (n_out * n_in,)
        Group labels of the weight entries, row-major (entry ``(o, i)`` is item
        ``o * n_in + i``), e.g. the labels of :func:`sharelearn.datasets.make_convolution` or a
        discovered sharing.
    shape : tuple of int
        ``(n_out, n_in)``.

    Returns
    -------
    group : SymmetryGroup
        Its exact ``order``, ``generators`` (pairs ``(out_perm, in_perm)``) and ``name``.

    Raises
    ------
    ValueError
        If ``partition`` is not a 1-D array of non-negative integer labels, or its length is
        not ``n_out * n_in``, or ``shape`` is not a pair of positive ints.

    Examples
    --------
    A circular convolution is invariant under the cyclic shifts and nothing else:

    >>> from sharelearn.symmetry import shift_sharing, symmetry_group
    >>> group = symmetry_group(shift_sharing(8, 3, "circular"), (8, 8))
    >>> group.name, group.order
    ('C_8', 8)

    A Deep Sets layer (one value on the diagonal, one off it) and a fully shared layer:

    >>> import numpy as np
    >>> symmetry_group(1 - np.eye(5, dtype=int).ravel(), (5, 5)).name
    'S_5'
    >>> symmetry_group(np.zeros(12, dtype=int), (3, 4)).name
    'S_4 x S_3'

    A valid convolution has no symmetry as a finite layer:

    >>> symmetry_group(shift_sharing(6, 3, "valid"), (4, 6)).name
    'trivial'
    """
    shape = _check_layer_shape(shape)
    n_out, n_in = shape
    labels = _as_labels(partition, "partition")
    if labels.size != n_out * n_in:
        raise ValueError(
            f"partition has {labels.size} labels but shape={shape} has "
            f"{n_out} x {n_in} = {n_out * n_in} weight entries."
        )
    layer = _LayerGraph(labels, n_out, n_in)
    order = layer.order()
    gens = layer.generators()
    generators = [(g[:n_out].copy(), g[n_out:] - n_out) for g in gens]
    factors, primary = _Namer(layer).structure(())
    return SymmetryGroup(
        order=order, generators=generators, name=_format_name(factors, primary), shape=shape
    )


def named_sharing(name, shape):
    """A named sharing scheme built for a layer of ``shape = (n_out, n_in)``.

    Parameters
    ----------
    name : {"shift", "permutation", "shared", "unshared"}
        ``"shift"``: a 1-D convolution. With ``n_out < n_in`` the valid cross-correlation with
        a kernel of ``n_in - n_out + 1`` taps (:func:`shift_sharing`); with ``n_out == n_in``
        the cyclic-shift orbit partition (a circular kernel spanning the input).
        ``"permutation"``: the Deep Sets layer (``n_out == n_in``): one value on the
        diagonal, one off it. ``"shared"``: one group. ``"unshared"``: every entry its own.
    shape : tuple of two ints

    Returns
    -------
    labels : ndarray of shape (n_out * n_in,)

    Examples
    --------
    >>> from sharelearn.symmetry import named_sharing
    >>> named_sharing("shift", (2, 3)).reshape(2, 3)
    array([[0, 1, 2],
           [2, 0, 1]])
    """
    n_out, n_in = _check_layer_shape(shape)
    names = ("shift", "permutation", "shared", "unshared")
    if name == "shared":
        return np.zeros(n_out * n_in, dtype=np.int64)
    if name == "unshared":
        return np.arange(n_out * n_in, dtype=np.int64)
    if name == "shift":
        if n_out < n_in:
            return shift_sharing(n_in, n_in - n_out + 1, "valid")
        if n_out == n_in:
            return shift_sharing(n_in, n_in, "circular")
        raise ValueError(f"the sharing 'shift' needs n_outputs <= n_features, got shape {shape}.")
    if name == "permutation":
        if n_out != n_in:
            raise ValueError(f"the sharing 'permutation' needs a square layer, got shape {shape}.")
        return sharing_from_group(permutation_generators(n_in), (n_out, n_in))
    raise ValueError(f"{name!r} is not a known sharing; expected one of "
                     f"{', '.join(repr(n) for n in names)}.")
