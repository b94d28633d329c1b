"""
Shared Gaussian means
=====================

Which of K features share their mean? The paper's first experiment: x ~ N(A psi, I).
"""

from sharelearn import SharingDiscoverer
from sharelearn.datasets import make_shared_means
from sharelearn.plotting import SharingDisplay

X, truth, means = make_shared_means(100, n_features=6, n_groups=2, random_state=1)
disc = SharingDiscoverer(model="mean", reference=truth, random_state=0).fit(X)
print("true partition:      ", truth)
print("discovered partition:", disc.sharing_partition_)
print("partition distance:", -disc.score(X))
print("tied means:", disc.means_.round(2))
pooled = disc.transform(X)  # one column per discovered group, as FeatureAgglomeration
print("pooled shape:", pooled.shape)

# %%
# The means as a column of six cells, coloured by group, beside the truth.
display = SharingDisplay.from_estimator(disc, show_soft=False)
