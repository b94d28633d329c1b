"""The model protocol: what the outer loop needs from a model type.

The loop (:mod:`sharelearn.outer`) knows nothing of means, linear maps or networks. It relaxes a
batch of soft selections against :meth:`SharingModel.relaxation`, rounds them, searches each
rounded partition with :meth:`SharingModel.hard_objective` and :meth:`SharingModel.search_moves`
(:func:`sharelearn.search.local_search`), and hands the best partition to
:meth:`SharingModel.refit`. A model type is one subclass in its own file, registered in
:mod:`sharelearn.models`; nothing else changes to add one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SharingModel"]


class SharingModel:
    """Base of the model types.

    After :meth:`prepare` a model has ``n_items`` (the shareable items: means, entries of a map,
    slices of a network's parameter) and ``layer_shape`` (``(n_out, n_in)``, the layout that
    named sharings and the symmetry group are built for).

    Every member that an estimator (``_base.py``, ``_discoverer.py``, ``_network.py``) or the
    outer loop calls is declared here; the estimators ask a model what it is through these,
    never by its name or class.

    Attributes
    ----------
    name : str
        The model's name as the estimator reports it (``model_``: ``"mean"``, ``"linear"``;
        networks: ``"module"``, ``"sequence"``).
    supervised : bool
        Whether the model fits targets ``y`` (a linear map, a network) or the features alone
        (shared means): the estimator requires ``y`` and offers ``predict`` accordingly.
    relax_batch : int or None
        Most restarts relaxed together as one batch (``None``: as the memory budget allows).
    parallel_searches : bool
        Whether the searches from different starts may run in joblib workers (networks keep
        them in one process, where they share a cache of scored partitions).
    """

    name = None
    supervised = True
    relax_batch = None
    parallel_searches = True

    @classmethod
    def from_estimator(cls, est):
        """The model built from an estimator's parameters (the registries of
        :mod:`sharelearn.models` call it)."""
        raise NotImplementedError

    def prepare(self, X, y, splits, *, dtype, device, rng=None, seed=None):
        """Take the validated data and the estimator's splits; set ``n_items`` and
        ``layer_shape``. ``splits``: the (train, validation) index pairs of a closed form (None
        for the evidence), or a network's ``(train, validation, stop)`` triple; ``rng`` and
        ``seed``: the fit's random state and the seed of a network's module (a closed form
        needs neither)."""
        raise NotImplementedError

    def default_columns(self):
        """Candidate groups of the relaxation when the user gives none."""
        return max(2, min(self.n_items, 16))

    def batch_size(self, n_columns):
        """Most restarts relaxed together when ``relax_batch`` is None."""
        return 1

    def auto_restarts(self):
        """Relaxation restarts for ``n_restarts="auto"``."""
        return 1

    def check_restarts(self, n_restarts):
        """An error, before any work, if the objective cannot relax ``n_restarts`` restarts
        (after :meth:`prepare`). Any number by default."""

    def check_inputs(self, X, fitted=None):
        """Model-specific checks of validated inputs (``fitted``: the fitted estimator, when
        predicting); returns the inputs to use."""
        return X

    @property
    def entry_level(self):
        """Whether the items are the many entries of one matrix, searched from its structured
        hypotheses without relaxations (``n_restarts="auto"`` runs none then)."""
        return False

    # -- memory (closed forms; a network's memory is its module's) ---------------------------
    uses_splits = True  # whether the objective scores on validation splits (else: evidence)
    min_train = 1  # the fewest training samples a split may leave

    def layer_dims(self, n_features, n_outputs):
        """``(n_out, n_in)`` of the shared layer for data of this shape, before
        :meth:`prepare`."""
        raise NotImplementedError

    def memory_need(self, n_samples, n_features, n_outputs, splits, itemsize, *,
                    start_groups=1):
        """The bytes a fit needs (a ``MemoryNeed``: its least, and how it grows with the
        columns of the search's states), before :meth:`prepare`."""
        raise NotImplementedError

    def plan_memory(self, need, budget):
        """Work within ``budget`` bytes (None: no budget): how many candidates and restarts at
        once."""

    def start_cost_factor(self, n_groups):
        """Roughly how many times the default start's work a search from ``n_groups`` groups
        costs (the estimator warns at 10 and above)."""
        return 1.0

    # -- the fitted model in use --------------------------------------------------------------
    @staticmethod
    def transform(est, X):
        """The fitted estimator ``est``'s transform of validated ``X``."""
        raise NotImplementedError

    @staticmethod
    def score(est, X, y):
        """The fitted estimator ``est``'s score on ``(X, y)`` without a reference."""
        raise NotImplementedError

    def relaxation(self, S0):
        """The relaxed data term: a callable ``S -> values``, for a batch of soft selections
        ``S`` (``B x n_items x r``, ``B <= relax_batch``) returning one differentiable value per
        matrix. It may keep state across calls (a network trained warm from step to step): a
        new relaxation is asked for each batch of restarts, with its first selections ``S0``."""
        raise NotImplementedError

    def hard_objective(self, penalties):
        """The objective of hard partitions, with ``state(labels)`` returning a
        :class:`~sharelearn.search.SearchState` whose ``value`` is data term plus penalties."""
        raise NotImplementedError

    def search_moves(self, max_iter):
        """A fresh list of the discrete search's moves, in order of preference (moves may keep
        state within one search; ``max_iter`` caps any search a move runs itself)."""
        raise NotImplementedError

    def extra_starts(self, init_is_auto, n_relax):
        """More partitions to search from besides the relaxations and ``init``."""
        return []

    def hypotheses(self):
        """Named structured partitions of the items (a dict: description -> labels) that the
        objective knows: their coarsenings are charged a block-wise code length, and the
        outer loop searches them (:mod:`sharelearn.search.coarsening`). None by default."""
        return {}

    def hypothesis_replaces_start(self):
        """Whether a hypothesis that scores better than ``init`` replaces it (and the extra
        starts) instead of being searched besides it."""
        return False

    def explains(self, labels):
        """Whether the data give no reason to look beyond the coarsenings of the sharing
        ``labels`` (a test that the map lies in its span). Then a hypothesis that scores better
        than ``init`` replaces it, and ``n_restarts="auto"`` runs no relaxation. False by
        default."""
        return False

    def span_statistics(self, labelings):
        """How well each sharing of ``labelings`` (a list of label arrays) explains the data:
        one dict per sharing with ``statistic`` and ``p_value`` (the span test), ``explained``
        (the fraction of the targets' variance its tied map explains) and ``signal_p_value``
        (whether that is more than chance); None where the model has no such test (the
        estimator's ``hypotheses_`` then leaves those columns empty)."""
        return None

    def refit(self, labels, objective):
        """Fit the chosen partition on all the data; returns ``(labels, attributes)``: the
        final partition (a model may still merge groups here) and the fitted attributes that
        the estimator sets, numpy only."""
        raise NotImplementedError

    def release(self):
        """Drop what only the fit needed (tensors, data), keeping what prediction needs."""

    @staticmethod
    def shared_start(n_items):
        return np.zeros(n_items, dtype=np.int64)
