"""DESIGN.md's rooms, as imports: feature_store (the data library) imports no Dagster, dbt or torch, and agent
imports no Dagster or dbt.  Read from the source with ast, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "feature_store": {"dagster", "dagster_dbt", "dbt", "torch"},
    "agent": {"dagster", "dagster_dbt", "dbt"},
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_imports_none_of_its_forbidden_packages(room):
    files = sorted((ROOT / room).rglob("*.py"))
    assert files, f"no Python files under {room}/"
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & FORBIDDEN[room]) for path in files
    }
    assert not {k: v for k, v in offenders.items() if v}, f"{room}/ imports what DESIGN.md keeps out of it"
