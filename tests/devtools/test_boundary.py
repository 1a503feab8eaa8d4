"""The devtools use only spikard's public surface (ruff's banned-api says the same
for the modules that exist today; this catches any added later)."""

import ast
from pathlib import Path

import spikard_devtools

PRIVATE = ("spikard._", "spikard.supervisor")


def test_devtools_import_nothing_private_from_spikard():
    package = Path(spikard_devtools.__file__).parent
    offending = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            offending += [f"{path.name}: {name}" for name in names if name.startswith(PRIVATE)]
    assert offending == []


def test_the_runtime_never_imports_the_devtools():
    import spikard

    package = Path(spikard.__file__).parent
    for path in package.rglob("*.py"):
        assert "spikard_devtools" not in path.read_text(), path
