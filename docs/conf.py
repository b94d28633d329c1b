"""Sphinx configuration of the sharelearn documentation.

Build (from the repository root)::

    sphinx-build -W -b html docs docs/_build/html

The example gallery is rendered from ``examples/``. Its scripts are only *executed* (plots and
printed output included in the pages) when ``SHARELEARN_DOCS_RUN_GALLERY=1``; otherwise the pages
show the code alone, which keeps the CI build short (the tests run every example anyway). Set
``SHARELEARN_EXAMPLES_QUICK=1`` as well for a fast executed build (fewer trials in the sweeps).
"""

from __future__ import annotations

import os
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))
# the package is imported from the source tree, so an uninstalled checkout builds too
sys.path.insert(0, str(ROOT))

import sharelearn  # noqa: E402

project = "sharelearn"
author = "The sharelearn developers"
copyright = "The sharelearn developers"
release = sharelearn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "benchmark_figures",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints",
                    "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.md5", "auto_examples/*.json"]

# -- MyST: the Markdown pages (method, parallel, results) stay readable on GitHub -----------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_url_schemes = ["http", "https", "mailto"]

# -- API reference --------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": False, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# Links into numpy, scikit-learn, ... need their inventories from the network, and an unreachable
# inventory is a warning (an error under -W), so they are opt-in for builds that have a network.
if os.environ.get("SHARELEARN_DOCS_INTERSPHINX", "0") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
    }

# -- Example gallery ------------------------------------------------------------------------------
_run_gallery = os.environ.get("SHARELEARN_DOCS_RUN_GALLERY", "0") == "1"
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "plot_gallery": _run_gallery,
    "within_subsection_order": "gallery_order.ExampleOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "reference_url": {"sharelearn": None},
    "doc_module": ("sharelearn",),
    "backreferences_dir": "generated/backreferences",
    "show_memory": False,
    "min_reported_time": 10,
}

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sharelearn {release}"
html_static_path = ["_static"]
html_css_files = ["sharelearn.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "getting_started": [], "results": []}
html_show_sourcelink = False


# -- Docstring types such as "of shape (n_items, n_groups_)" --------------------------------------
_PARAM_LINE = re.compile(r"^(\s*[\w*, ]+ : )(.*)$")
_TRAILING_UNDERSCORE = re.compile(r"\b([A-Za-z]\w*?)_\b(?!\w)")


def _escape_fitted_names_in_types(app, what, name, obj, options, lines):
    """In reST, ``n_groups_`` is a link to a target named ``n_groups``; the types of the
    Parameters and Attributes sections name fitted attributes that way, so escape their trailing
    underscores before numpydoc turns the lines into reST (the descriptions use backquotes)."""
    for i, line in enumerate(lines):
        match = _PARAM_LINE.match(line)
        if match and "`" not in match.group(2):
            lines[i] = match.group(1) + _TRAILING_UNDERSCORE.sub(r"\1\\_", match.group(2))


def setup(app):
    # before numpydoc's own handler (priority 500), which parses the sections
    app.connect("autodoc-process-docstring", _escape_fitted_names_in_types, priority=400)
