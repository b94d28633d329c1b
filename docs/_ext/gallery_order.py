"""The order of the example gallery: from a first discovery to the paper's experiments.

sphinx-gallery imports this class by name (``within_subsection_order``), so the configuration
stays a plain string that Sphinx can pickle.
"""

ORDER = [
    "plot_quickstart.py",
    "plot_shared_means.py",
    "plot_shift_1d_2d.py",
    "plot_grid_search.py",
    "plot_gaussian_sweeps.py",
    "plot_sum_of_numbers.py",
    "plot_symmetry_naming.py",
    "plot_rotation_equivariance.py",
]


class ExampleOrder:
    """Sort key: the listed examples first, in ``ORDER``, then any others by file name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = str(filename).rsplit("/", 1)[-1]
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)

    def __repr__(self):
        return "<ExampleOrder>"
