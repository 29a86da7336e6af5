"""Moved to `audit.records` (the read model): kept only while `audit/report/model.py` still imports
`collect` from here (that file is being changed elsewhere); remove it with that import."""

from audit.records import COLUMNS, collect

__all__ = ["COLUMNS", "collect"]
