"""Read Parquet tables: one file, or a folder partitioned by clinic.

A table may be ``name.parquet`` or a folder ``name/`` of Parquet files,
typically hive-partitioned by clinic (``name/clinic_id=C01/part-0.parquet``).
With ``clinics`` given, only those clinics' rows are read: partitions are
pruned and rows filtered inside Arrow, so a clinic's report does not load a
whole registry into pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from stepanalytics.contract import TABLES
from stepanalytics.io.arrow_frames import arrow_to_frame


def read_parquet_table(
    path: Path,
    table: str,
    *,
    clinics: Sequence[str] | None = None,
    patient_ids: pa.Array | None = None,
) -> pd.DataFrame:
    """Read a Parquet table, optionally only some clinics' or patients' rows.

    The partition key of a partitioned folder is dropped from tables whose
    contract has no such column (it is storage layout, not data).
    """
    partitioning = "hive" if path.is_dir() else None
    dataset = ds.dataset(path, format="parquet", partitioning=partitioning)
    condition = None
    names = set(dataset.schema.names)
    if clinics is not None and "clinic_id" in names:
        condition = pc.field("clinic_id").isin(pa.array(list(clinics), pa.string()))
    if patient_ids is not None:
        by_patient = pc.field("patient_id").isin(patient_ids)
        condition = by_patient if condition is None else condition & by_patient
    frame = arrow_to_frame(dataset.to_table(filter=condition))
    if partitioning:
        contract = {c.name for c in TABLES[table]}
        keys = [f.name for f in dataset.partitioning.schema] if dataset.partitioning else []
        frame = frame.drop(columns=[k for k in keys if k not in contract and k in frame.columns])
    frame = frame.reset_index(drop=True)
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame
