"""
Preprocessing that keeps the symmetry
=====================================

A sharing says which weights are *equal*. Preprocessing that rescales each feature by its own
factor changes which weights are equal, so it changes the sharing there is to find; one scale
for all features keeps it. Centring is harmless for ``model="linear"`` (its intercept is free)
and destroys everything for ``model="mean"`` (every mean becomes 0).

Here ``make_pipeline(StandardScaler(), SharingDiscoverer(model="linear"))`` loses the exact
recovery of a convolution, and a scaler with one global scale keeps it.
"""

# %%
# A global scaler: centre each feature (optional) and divide all of them by one number. It is a
# scikit-learn transformer, so it fits on the training data of a pipeline and applies the same
# offsets and scale to new data.
import os
import textwrap
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sharelearn import SharingDiscoverer, partition_distance
from sharelearn.datasets import make_convolution, make_shared_means
from sharelearn.plotting import SharingDisplay

QUICK = os.environ.get("SHARELEARN_EXAMPLES_QUICK") == "1"


class GlobalScaler(TransformerMixin, BaseEstimator):
    """Subtract each feature's mean (if ``with_mean``), then divide by one common scale."""

    def __init__(self, with_mean=True):
        self.with_mean = with_mean

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        self.mean_ = X.mean(axis=0) if self.with_mean else np.zeros(X.shape[1])
        self.scale_ = float(np.std(X - self.mean_)) or 1.0
        return self

    def transform(self, X):
        return (np.asarray(X, dtype=float) - self.mean_) / self.scale_


def fit_quietly(pipeline, *data):
    """Fit, and print the warnings the estimator gives instead of letting them scroll by."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.fit(*data)
    for w in caught:
        print(textwrap.fill(str(w.message), 88, initial_indent="   warning: ",
                            subsequent_indent="   "))
    return pipeline[-1]


# %%
# A linear map: a valid cross-correlation with the kernel ``1, 3, 5``, its inputs recorded in
# other units and with an offset (``1000 x + 50``). Every weight of one diagonal is equal.
X, Y, truth, W = make_convolution(150, input_shape=8 if QUICK else 12, kernel_size=3,
                                  random_state=0)
X = 1000 * X + 50

linear = {
    "raw features": [],
    "StandardScaler (per feature)": [StandardScaler()],
    "GlobalScaler (centred, one scale)": [GlobalScaler()],
}
found = {}
for name, steps in linear.items():
    print(f"linear, {name}:")
    est = fit_quietly(make_pipeline(*steps, SharingDiscoverer(model="linear", random_state=0)),
                      X, Y)
    found[name] = est
    print(f"   {est.n_groups_} groups, partition distance "
          f"{partition_distance(est.sharing_partition_, truth)} of {truth.size} weights")

# %%
# Per-feature scaling ``x_j -> x_j / s_j`` turns the map ``W`` into ``W diag(s)``: each column
# of weights is multiplied by its own ``s_j``, so the equal weights of a diagonal, which lie in
# different columns, are no longer equal. The discoverer, correctly, finds the new map's
# sharing: almost none. Centring moves ``W m`` into the intercept and leaves ``W`` alone.
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
for ax, name in zip(axes, ["StandardScaler (per feature)", "GlobalScaler (centred, one scale)"],
                    strict=True):
    SharingDisplay.from_estimator(found[name], ax=ax, show_soft=False, name=name)

# %%
# Shared means: six features with two distinct means. Centring makes every mean 0, so every
# feature joins one group; per-feature scaling divides each mean by its own spread. One scale
# for all features, without centring, keeps the two groups.
Xm, truth_m, means = make_shared_means(100, n_features=6, n_groups=2, random_state=1)
Xm = 1000 * Xm

mean_steps = {
    "raw features": [],
    "StandardScaler (per feature)": [StandardScaler()],
    "centring alone": [StandardScaler(with_std=False)],
    "GlobalScaler (one scale, not centred)": [GlobalScaler(with_mean=False)],
}
for name, steps in mean_steps.items():
    print(f"mean, {name}:")
    est = fit_quietly(make_pipeline(*steps, SharingDiscoverer(model="mean", random_state=0)),
                      Xm)
    print(f"   {est.n_groups_} groups, partition distance "
          f"{partition_distance(est.sharing_partition_, truth_m)} of {truth_m.size} means")

plt.show()
