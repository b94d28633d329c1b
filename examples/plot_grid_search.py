"""
Choosing the penalties by grid search
=====================================

The penalty weights of :class:`~sharelearn.SharingDiscoverer` are ordinary hyper-parameters, so
:class:`~sklearn.model_selection.GridSearchCV` chooses them. On synthetic data the true sharing is
known, and :func:`sharelearn.metrics.partition_scorer` scores every candidate by its partition
distance to it (the data passed to the scorer are ignored).

The task: a valid cross-correlation of 12 inputs with a 3-tap kernel, a 10 x 12 map whose 120
entries hold three taps and 90 structural zeros. The grid includes ``code_length=0``, i.e. the
paper's penalties alone.

The search here starts from the fully shared partition (``init="shared"``), so that the grid shows
what the penalties do to a search that knows nothing about convolutions. With the default
``init="auto"`` the estimator first tests whether the data lie in the span of a convolution the
layer's shape admits; here they do, the search stays among that convolution's coarsenings, and
every setting of the grid finds the truth (see the end).
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from sharelearn import SharingDiscoverer
from sharelearn.datasets import make_convolution
from sharelearn.metrics import partition_scorer

QUICK = os.environ.get("SHARELEARN_EXAMPLES_QUICK") == "1"

# Quick runs (the test suite) use an 8-input map, 48 entries, on which the slow corner of the
# grid (no code length: the search keeps splitting groups) costs a fraction of the time.
X, Y, truth, W = make_convolution(150, input_shape=8 if QUICK else 12, kernel_size=3,
                                  random_state=0)

grid = {"nuclear": [0.0, 2.0, 8.0], "code_length": [0.0, 0.5, 2.0, 8.0]}
if QUICK:
    grid = {"nuclear": [2.0, 8.0], "code_length": [0.0, 2.0]}
# The search from the fully shared partition alone, without relaxations.
search = GridSearchCV(
    SharingDiscoverer(model="linear", init="shared", n_restarts=0, random_state=0),
    grid, scoring=partition_scorer(truth), cv=2,
)
search.fit(X, Y)
print("best penalties:", search.best_params_)
print("partition distance of the best:", 0.0 - search.best_score_)

# %%
# The mean partition distance over the two folds for every pair of penalties. Without the code
# length, the search splits the 90 zeros into sub-groups that fit the validation noise (86
# entries off with no penalty at all, 48 with the default nuclear weight); ``nuclear=8`` or any
# code length, down to 0.5, stops it.
results = search.cv_results_
nuclear, code = grid["nuclear"], grid["code_length"]
pd = np.empty((len(nuclear), len(code)))
for i, params in enumerate(results["params"]):
    # 0.0 - score, not -score: a perfect score would print as -0.0
    pd[nuclear.index(params["nuclear"]), code.index(params["code_length"])] = (
        0.0 - results["mean_test_score"][i])
for n, row in zip(nuclear, pd, strict=True):
    by_code = {c: float(v) for c, v in zip(code, row.round(1), strict=True)}
    print(f"nuclear={n:<4}: partition distance by code_length", by_code)

fig, ax = plt.subplots(figsize=(5.5, 3.2), layout="constrained")
image = ax.imshow(pd, cmap="magma_r", vmin=0)
for i in range(len(nuclear)):
    for j in range(len(code)):
        ax.text(j, i, f"{pd[i, j]:.1f}", ha="center", va="center",
                color="white" if pd[i, j] > 0.6 * pd.max() else "black")
ax.set_xticks(range(len(code)), [str(c) for c in code])
ax.set_yticks(range(len(nuclear)), [str(n) for n in nuclear])
ax.set_xlabel("code_length")
ax.set_ylabel("nuclear")
ax.set_title(f"mean partition distance ({W.size} entries)")
fig.colorbar(image, ax=ax, label="partition distance")
plt.show()

# %%
# With the default ``init="auto"``, the 3-tap convolution's hypothesis explains the data (the
# F-test of the map in its span does not reject), so its best coarsening is the only start, and
# no penalty setting lets the search leave it for noise.
auto = GridSearchCV(SharingDiscoverer(model="linear", random_state=0), grid,
                    scoring=partition_scorer(truth), cv=2).fit(X, Y)
print("init='auto', worst partition distance over the grid:",
      0.0 - auto.cv_results_["mean_test_score"].min())
