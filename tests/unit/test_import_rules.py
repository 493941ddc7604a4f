"""The dependency rules of the tree, read from the imports themselves (``ast``, nothing is imported):

- the domain package ``videojobs/`` never imports a handler (``functions``) or ``infra``;
- no handler imports another handler (each function's code asset is the package plus its own folder);
- nothing outside ``infra/``, ``tests/``, ``bench/`` and ``tools/`` imports ``infra`` (no Lambda ships CDK);
- nothing in ``videojobs/`` imports handlers by name at run time (``importlib``, ``__import__``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = ("videojobs", "functions", "infra", "tests", "bench", "tools", "examples")
MAY_IMPORT_INFRA = ("infra", "tests", "bench", "tools")
DYNAMIC_IMPORTS = {"importlib", "__import__"}


def _sources() -> Iterator[Path]:
    for folder in SOURCE_FOLDERS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def imported_modules(source: str) -> Iterator[str]:
    """Every module an ``import`` or ``from … import`` names, absolute (this tree uses no relative imports)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            # ``from functions import submit``: the name may itself be a module.
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def uses_dynamic_import(source: str) -> bool:
    tree = ast.parse(source)
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return bool(DYNAMIC_IMPORTS & (set(imported_modules(source)) | names))


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def violations(path: str, source: str) -> list[str]:
    """What ``source``, the file at ``path`` (relative to the root, with ``/``), breaks of the rules above."""
    folder = path.split("/", 1)[0]
    found = []
    for module in sorted(set(imported_modules(source))):
        if folder == "videojobs" and _top(module) in ("functions", "infra"):
            found.append(f"{path}: the domain imports {module}")
        if folder == "functions" and _top(module) == "functions":
            own = path.split("/")[1]
            parts = module.split(".")
            if len(parts) > 1 and parts[1] != own:
                found.append(f"{path}: a handler imports another handler, {module}")
        if folder not in MAY_IMPORT_INFRA and _top(module) == "infra":
            found.append(f"{path}: imports {module} (only infra, tests, bench and tools may)")
    if folder == "videojobs" and uses_dynamic_import(source):
        found.append(f"{path}: imports modules at run time (importlib)")
    return found


def test_the_tree_keeps_the_import_rules() -> None:
    found = [v for file in _sources() for v in violations(file.relative_to(ROOT).as_posix(), file.read_text())]
    assert found == []


def test_every_source_folder_is_read() -> None:
    read = {file.relative_to(ROOT).parts[0] for file in _sources()}
    assert {"videojobs", "functions", "infra", "tests"} <= read


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("videojobs/service/jobs.py", "from functions.submit import handler"),
        ("videojobs/outputs.py", "import infra.monitoring"),
        ("functions/submit/handler.py", "from functions.status.handler import get_deps"),
        ("functions/submit/handler.py", "from functions import status"),
        ("examples/quickstart.py", "from infra.local import LocalStack"),
        ("videojobs/service/jobs.py", "import importlib\nimportlib.import_module('functions.submit.handler')"),
        ("videojobs/service/jobs.py", "handler = __import__('functions.submit.handler')"),
    ],
)
def test_each_rule_catches_its_violation(path: str, source: str) -> None:
    assert violations(path, source)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("functions/submit/handler.py", "from functions.submit import helpers\nfrom videojobs import api"),
        ("tests/integration/test_x.py", "from functions.process import handler\nfrom infra.local import LocalStack"),
        ("infra/construct.py", "from videojobs import wiring"),
        ("bench/load.py", "from infra.local.stack import LocalStack"),
    ],
)
def test_allowed_imports_pass(path: str, source: str) -> None:
    assert violations(path, source) == []
