"""The imports go one way (docs/design.md): estimators -> outer.py -> search/; estimators ->
models/ -> networks/ -> search/. Every import of every module is read, at its top and inside
functions, so that no module reaches one above it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sharelearn"
ESTIMATORS = {"sharelearn._base", "sharelearn._discoverer", "sharelearn._network",
              "sharelearn.__main__"}
# each layer, and the modules it must never import (by prefix)
FORBIDDEN = {
    "sharelearn.search": ["sharelearn.models", "sharelearn.networks", "sharelearn.outer",
                          *ESTIMATORS],
    "sharelearn.networks": ["sharelearn.models", "sharelearn.outer", *ESTIMATORS],
    "sharelearn.models": ["sharelearn.outer", *ESTIMATORS],
    "sharelearn.outer": ["sharelearn.models", "sharelearn.networks", *ESTIMATORS],
}


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """Every module ``path`` imports, absolute, wherever the import statement is."""
    return _imports_of(path.read_text(), _module_name(path), path.name == "__init__.py")


def _imports_of(source, name, is_package):
    package = name if is_package else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            out.add(module)
            # "from . import x" may import a submodule x
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _climbs(name, imported):
    """The imports of module ``name`` that reach above its layer."""
    return sorted(m for layer, forbidden in FORBIDDEN.items()
                  if name == layer or name.startswith(layer + ".")
                  for m in imported if any(m == f or m.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: _module_name(p))
def test_no_module_imports_one_above_it(path):
    name = _module_name(path)
    bad = _climbs(name, _imports(path))
    assert not bad, f"{name} imports {bad}, above its layer"


def test_the_check_sees_imports_inside_functions_and_relative_ones():
    source = ("import numpy\n"
              "from . import improves\n"
              "def f():\n"
              "    from ..models import base\n"
              "    from ..outer import discover\n")
    found = _imports_of(source, "sharelearn.search.fake", is_package=False)
    assert {"sharelearn.search", "sharelearn.models.base", "sharelearn.outer"} <= found
    assert _climbs("sharelearn.search.fake", found) == ["sharelearn.models",
                                                         "sharelearn.models.base",
                                                         "sharelearn.outer",
                                                         "sharelearn.outer.discover"]
    # the same imports from an estimator climb nowhere
    assert _climbs("sharelearn._discoverer", found) == []
