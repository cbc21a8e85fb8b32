"""Arrow tables to pandas frames with text as plain (shared) Python strings.

Converting millions of Arrow strings to Python objects one by one is the
slow part of reading a large cohort.  Dictionary-encoding first means each
distinct id is turned into a Python string once and shared by every row
that holds it; the frame still has ordinary object columns, so nothing
downstream sees categoricals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def arrow_to_frame(table: pa.Table) -> pd.DataFrame:
    """Convert an Arrow table to pandas; text columns become object strings, nulls None.

    Examples
    --------
    >>> import pyarrow as pa
    >>> arrow_to_frame(pa.table({"id": ["a", None, "a"], "x": [1, 2, 3]}))["id"].tolist()
    ['a', None, 'a']
    """
    return pd.DataFrame({name: column_to_series(table.column(name)) for name in table.column_names})


def column_to_series(column: pa.ChunkedArray) -> pd.Series:
    """One Arrow column as a pandas Series (see :func:`arrow_to_frame`)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.dictionary_encode(column)
    if pa.types.is_dictionary(column.type):
        cat = column.to_pandas()
        values = np.asarray(cat.cat.categories, dtype=object)
        codes = cat.cat.codes.to_numpy()
        out = np.empty(len(codes), dtype=object)
        has = codes >= 0
        out[has] = values[codes[has]]
        out[~has] = None
        return pd.Series(out)
    return column.to_pandas()
