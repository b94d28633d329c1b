"""sharelearn: discover the symmetries of data by learning how a model shares its parameters."""

from . import datasets, metrics, partition
from ._discoverer import SharingDiscoverer
from ._network import NetworkSharingClassifier, NetworkSharingDiscoverer
from ._version import __version__
from .partition import (
    canonical_labels,
    labels_to_selection,
    partition_distance,
    selection_to_labels,
)

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
