"""Collect the results of finished runs into one table (pandas), which the statistics read
(docs/design.md, "Data flow"); besides it, only the paired tests over test examples read a run's
stored predictions."""

from __future__ import annotations

from typing import Any

import pandas as pd

from audit.runner import Row
from audit.store import RESULT_KEYS

COLUMNS = ["protocol", "arm", "framework", "seed", "run_id", *RESULT_KEYS]


def collect(rows: list[Row]) -> pd.DataFrame:
    """One line per finished run of the matrix (`runner.matrix`), seed axes as columns."""
    records: list[dict[str, Any]] = []
    for row in rows:
        if row.state != "done" or not row.result:
            continue
        r = row.run
        record: dict[str, Any] = {"protocol": r.protocol, "arm": r.arm, "framework": r.framework,
                  "seed": r.seed_label, "run_id": r.run_id}
        record |= {f"seed_{axis}": value for axis, value in r.seed.items()}
        record |= {key: row.result.get(key) for key in RESULT_KEYS}
        records.append(record)
    return pd.DataFrame.from_records(records, columns=None if records else COLUMNS)
