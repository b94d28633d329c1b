"""Model types: what is shared, how a partition is scored, refitted and used.

Each model type is one class in its own file, following the protocol of
:class:`~sharelearn.models.base.SharingModel`, and one entry in a registry below:

* ``"mean"``: :class:`~sharelearn.models.means.SharedMeans` (:class:`SharingDiscoverer`);
* ``"linear"``: :class:`~sharelearn.models.linear.LinearMap` (:class:`SharingDiscoverer`);
* ``"sequence"``: :class:`~sharelearn.models.sequence.SequenceModel`
  (:class:`NetworkSharingDiscoverer`);
* a torch module: :class:`~sharelearn.models.module.ModuleModel`
  (:class:`NetworkSharingDiscoverer`).
"""

from __future__ import annotations

import torch

from .base import SharingModel
from .linear import LinearMap
from .means import SharedMeans
from .module import ModuleModel
from .sequence import SequenceModel

__all__ = ["CLOSED_FORM_MODELS", "NETWORK_MODELS", "LinearMap", "ModuleModel", "SequenceModel",
           "SharedMeans", "SharingModel", "closed_form_model", "network_model"]

# The registries: a name given to an estimator's ``model`` / ``module`` -> the model type.
CLOSED_FORM_MODELS = {"mean": SharedMeans, "linear": LinearMap}
NETWORK_MODELS = {"sequence": SequenceModel}


def closed_form_model(est, y=None):
    """The closed-form model named by ``est.model``, built from the estimator's parameters:
    for ``"auto"``, the linear map when ``y`` is given and the shared means without. A network
    (a registry name, a module class or instance) is refused with the estimator to use."""
    name = est.model
    if isinstance(name, str) and name == "auto":
        name = "mean" if y is None else "linear"
        if est.verbose:
            print("[SharingDiscoverer] model='auto': "
                  + ("y given, fitting the linear map y = W x + b (model='linear')"
                     if y is not None else
                     "no y, fitting the shared feature means (model='mean')"))
        return CLOSED_FORM_MODELS[name].from_estimator(est)
    if isinstance(name, str) and name in CLOSED_FORM_MODELS:
        return CLOSED_FORM_MODELS[name].from_estimator(est)
    if (isinstance(name, str) and name in NETWORK_MODELS) or isinstance(name, torch.nn.Module) \
            or (isinstance(name, type) and issubclass(name, torch.nn.Module)):
        shown = repr(name) if isinstance(name, str) else (
            name.__name__ if isinstance(name, type) else type(name).__name__ + "(...)")
        raise ValueError(
            f"SharingDiscoverer fits the closed-form models {sorted(CLOSED_FORM_MODELS)}; for "
            f"the network {shown} use NetworkSharingDiscoverer(module={shown}, ...).")
    raise ValueError(f"The 'model' parameter of SharingDiscoverer must be one of "
                     f"{['auto', *CLOSED_FORM_MODELS]}, got {name!r}.")


def network_model(est):
    """The network model of ``est.module`` (a registry name, a module class or instance)."""
    module = est.module
    if isinstance(module, str):
        if module not in NETWORK_MODELS:
            raise ValueError(f"The 'module' parameter of NetworkSharingDiscoverer must be a "
                             f"torch.nn.Module class or instance, or one of "
                             f"{sorted(NETWORK_MODELS)}, got {module!r}.")
        return NETWORK_MODELS[module].from_estimator(est)
    return ModuleModel.from_estimator(est)
