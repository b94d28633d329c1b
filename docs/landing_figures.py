"""Draw the two pictures of the documentation's landing page into ``docs/_static/``.

Run from the repository root (the pictures are committed; the documentation build does not fit
anything)::

    python docs/landing_figures.py            # both: about 5 minutes on one core
    python docs/landing_figures.py filter     # the filter only: seconds
    python docs/landing_figures.py network    # the network only

``landing_filter.png``: a Sobel filter (``scipy.ndimage.sobel``, its default reflect borders)
applied to 400 patches of 8 x 8 pixels of a photograph; :class:`sharelearn.SharingDiscoverer`
is given the patches and the filtered patches, nothing else, and finds the 64 x 64 map, reads
it as a 3 x 3 kernel and names its symmetry: the code of the README's "Your own data".

``landing_network.png``: the dense 64 -> 36 first layer of a network on the digits, whose
targets a teacher with a 3 x 3 convolution made; :class:`sharelearn.NetworkSharingDiscoverer`
with every entry of the layer an item finds the convolution inside it (the gallery's
dense-to-convolution example, in its quick size).
"""

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")  # files, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sharelearn.plotting import SharingDisplay  # noqa: E402

STATIC = pathlib.Path(__file__).resolve().parent / "_static"
DPI = 100  # about 900 pixels wide: the page's width, the kernel's values readable


def draw(estimator, name, title, map_width):
    """The map and its kernel on one compact figure, the kernel large enough to read (the
    page's captions say what they are)."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained",
                                width_ratios=[map_width, 1.0])
    display = SharingDisplay.from_estimator(estimator, show_soft=False, name=title, ax=axes)
    path = STATIC / name
    display.figure_.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(display.figure_)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def filter_figure():
    from scipy import ndimage
    from sklearn.datasets import load_sample_image
    from sklearn.feature_extraction.image import extract_patches_2d

    from sharelearn import SharingDiscoverer

    image = load_sample_image("china.jpg").mean(axis=2) / 255
    patches = extract_patches_2d(image, (8, 8), max_patches=400, random_state=0)
    X = patches.reshape(400, 64)
    Y = np.stack([ndimage.sobel(p, axis=0).ravel() for p in patches])
    est = SharingDiscoverer(random_state=0).fit(X, Y)
    print(est.structure_)
    print(est.symmetry_group_.name)
    draw(est, "landing_filter.png", f"Sobel on photo patches: symmetry "
         f"{est.symmetry_group_.name}", map_width=1.6)


def network_figure():
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    from sharelearn import NetworkSharingDiscoverer, partition_distance
    from sharelearn.symmetry import shift_sharing

    digits = load_digits().data
    X = (digits - digits.mean(0)) / np.where(digits.std(0) > 0, digits.std(0), 1.0)
    rng = np.random.default_rng(0)
    X = X[rng.permutation(len(X))]
    truth = shift_sharing((8, 8), 3)
    zero = np.bincount(truth).argmax()
    W = np.insert(rng.standard_normal(9), zero, 0.0)[truth].reshape(36, 64)
    clean = np.maximum(X @ W.T, 0) @ (rng.standard_normal(36) / 6)
    y = clean + 0.1 * clean.std() * rng.standard_normal(len(clean))

    class Student(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(64, 36, bias=False)
            self.out = nn.Linear(36, 1)

        def forward(self, x):
            return self.out(torch.relu(self.dense(x)))

    disc = NetworkSharingDiscoverer(Student, share={"dense.weight": None}, loss="mse",
                                    random_state=0).fit(X[:500], y[:500])
    print(disc.structure_)
    print("partition distance:", partition_distance(disc.sharing_partition_, truth))
    draw(disc, "landing_network.png", "a network's dense layer, 64 -> 36", map_width=2.2)


if __name__ == "__main__":
    which = sys.argv[1:] or ["filter", "network"]
    for name in which:
        {"filter": filter_figure, "network": network_figure}[name]()
