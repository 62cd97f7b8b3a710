"""Quoting of values and names spliced into SQL text (DuckDB's and delta-rs' predicates share the standard rules)."""

from __future__ import annotations


def literal(value: object) -> str:
    """A string literal: single quotes, an embedded quote doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted identifier: double quotes, an embedded double quote doubled."""
    return '"' + name.replace('"', '""') + '"'
