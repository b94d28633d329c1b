"""sharelearn: discover the symmetries of data by learning how a model shares its parameters."""

import importlib

from ._version import __version__

# The estimators import torch and scikit-learn (seconds): they are imported on first use, so
# that the command line answers --help and --version at once.
_SUBMODULES = ("datasets", "metrics", "partition")
_ATTRIBUTES = {
    "SharingDiscoverer": "._discoverer",
    "NetworkSharingClassifier": "._network",
    "NetworkSharingDiscoverer": "._network",
    "canonical_labels": ".partition",
    "labels_to_selection": ".partition",
    "partition_distance": ".partition",
    "selection_to_labels": ".partition",
}

__all__ = [
    "NetworkSharingClassifier",
    "NetworkSharingDiscoverer",
    "SharingDiscoverer",
    "__version__",
    "canonical_labels",
    "datasets",
    "labels_to_selection",
    "metrics",
    "partition",
    "partition_distance",
    "selection_to_labels",
]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
