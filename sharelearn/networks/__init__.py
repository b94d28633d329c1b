"""Networks whose parameters are shared: one concept per file.

* :mod:`~sharelearn.networks.tying`: the tying parametrization ``theta = A @ psi``;
* :mod:`~sharelearn.networks.sequence`: the built-in sequence network (``module="sequence"``);
* :mod:`~sharelearn.networks.problem`: what the inner problem of a tied network is (its losses
  as functions of ``(w, S)``) and its data term;
* :mod:`~sharelearn.networks.training`: how it is solved (full-batch Adam steps, the checks);
* :mod:`~sharelearn.networks.relaxed`: the relaxed data term, differentiable in the soft
  selection by the implicit hypergradient (:mod:`sharelearn.hypergrad`);
* :mod:`~sharelearn.networks.objective`: the hard objective, a partition scored by retrains
  (validation loss, or the Laplace evidence);
* :mod:`~sharelearn.networks.hypotheses`: the ranking of structured hypotheses by retrains;
* :mod:`~sharelearn.networks.laplace`: the Laplace evidence, one class per curvature structure;
* :mod:`~sharelearn.networks.memory`: what a fit will hold, by part, and the curvature that
  ``hessian_structure="auto"`` takes, estimated before any training (``memory_budget``);
* :mod:`~sharelearn.networks.refit`: the refit with skorch and its hold-out check of merges.

The model type that puts them together for the outer loop is
:class:`sharelearn.models.module.ModuleModel`; nothing here imports the models' registry or the
loop.
"""

from .problem import LOSS_FLOOR, TiedNetworkProblem, network_data_term
from .sequence import SEQUENCE_SHARE, SequenceNetwork
from .tying import TiedParameter, check_share, tie_parameters

__all__ = [
    "LOSS_FLOOR",
    "SEQUENCE_SHARE",
    "SequenceNetwork",
    "TiedNetworkProblem",
    "TiedParameter",
    "check_share",
    "network_data_term",
    "tie_parameters",
]
