"""pandera schemas of the typed cohort tables, generated from the contract.

:mod:`stepanalytics.validate` checks files as they are read (text cells,
row numbers, fixes); these schemas describe the tables *after* loading, for
users who check frames of their own in a pipeline (``schema.validate(df,
lazy=True)``) and for tests that hold the loader to the contract.
"""

from __future__ import annotations

import pandera.pandas as pa

from stepanalytics.contract import TABLES, UNIQUE_KEYS, ColumnSpec

_DTYPES = {
    "string": object,
    "month": object,
    "category": object,
    "int": "int64",
    "number": "float64",
    "bool": "boolean",
}


def _column(spec: ColumnSpec) -> pa.Column:
    checks = []
    if spec.allowed:
        checks.append(pa.Check.isin(list(spec.allowed)))
    if spec.minimum is not None:
        checks.append(pa.Check.ge(spec.minimum))
    if spec.kind == "month":
        checks.append(pa.Check.str_matches(r"^\d{4}-(0[1-9]|1[0-2])$"))
    dtype = _DTYPES[spec.kind]
    if spec.kind == "int" and spec.nullable:
        dtype = "Int64"
    return pa.Column(dtype, checks=checks, nullable=spec.nullable, required=spec.required)


def table_schema(table: str) -> pa.DataFrameSchema:
    """The pandera schema of a loaded contract table (extra columns allowed).

    Examples
    --------
    >>> import pandas as pd
    >>> schema = table_schema("events")
    >>> ok = pd.DataFrame({"patient_id": ["P1"], "day": [3], "event": ["flare_up"],
    ...                    "severity": ["mild"]})
    >>> len(schema.validate(ok))
    1
    """
    key = UNIQUE_KEYS.get(table)
    return pa.DataFrameSchema(
        {spec.name: _column(spec) for spec in TABLES[table]},
        unique=list(key) if key else None,
        strict=False,
        name=table,
    )
