"""Read Parquet tables: one file, or a folder partitioned by clinic.

A table may be ``name.parquet`` or a folder ``name/`` of Parquet files,
typically hive-partitioned by clinic (``name/clinic_id=C01/part-0.parquet``).
With ``clinics`` given, only those clinics' rows are read: partitions are
pruned and rows filtered inside Arrow, so a clinic's report does not load a
whole registry into pandas.  The index of the frame is always the row's
position in the whole dataset (files in the order Arrow lists them), so a
problem in a clinic's rows names the same row as a whole-registry read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from stepanalytics.contract import TABLES
from stepanalytics.errors import CohortError, Problem
from stepanalytics.io.arrow_frames import arrow_to_frame

_POSITION = "__stepanalytics_row"


def read_parquet_table(
    path: Path,
    table: str,
    *,
    clinics: Sequence[str] | None = None,
    patient_ids: pa.Array | None = None,
) -> pd.DataFrame:
    """Read a Parquet table, optionally only some clinics' or patients' rows.

    The partition key of a partitioned folder is dropped from tables whose
    contract has no such column (it is storage layout, not data).  The index
    is the row's 0-based position in the whole table, filtered or not.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "patients.parquet"
    >>> pd.DataFrame({"patient_id": ["P1", "P2", "P3"],
    ...               "clinic_id": ["C1", "C2", "C1"]}).to_parquet(file)
    >>> read_parquet_table(file, "patients", clinics=["C1"]).index.tolist()
    [0, 2]
    """
    try:
        return _read(path, table, clinics, patient_ids)
    except (pa.ArrowInvalid, OSError) as exc:
        problem = Problem(
            table,
            None,
            f"{path.name}: the Parquet data cannot be read ({exc})",
            "write the table again as Parquet (e.g. `stepanalytics ingest`)",
        )
        raise CohortError([problem], source=str(path)) from exc


def _read(
    path: Path, table: str, clinics: Sequence[str] | None, patient_ids: pa.Array | None
) -> pd.DataFrame:
    partitioning = _text_partitioning(path) if path.is_dir() else None
    dataset = ds.dataset(path, format="parquet", partitioning=partitioning)
    condition = None
    names = set(dataset.schema.names)
    if clinics is not None and "clinic_id" in names:
        condition = pc.field("clinic_id").isin(pa.array(list(clinics), pa.string()))
    if patient_ids is not None:
        by_patient = pc.field("patient_id").isin(patient_ids)
        condition = by_patient if condition is None else condition & by_patient
    if condition is None:
        frame = arrow_to_frame(dataset.to_table())
    else:
        frame = _filtered_with_positions(dataset, condition)
    if partitioning is not None:
        contract = {c.name for c in TABLES[table]}
        keys = [f.name for f in dataset.partitioning.schema] if dataset.partitioning else []
        frame = frame.drop(columns=[k for k in keys if k not in contract and k in frame.columns])
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def _filtered_with_positions(dataset: ds.Dataset, condition: ds.Expression) -> pd.DataFrame:
    """Rows meeting ``condition``, indexed by their position in the whole dataset.

    Files whose partition cannot match are skipped unread (only their footer
    is read, for the row count that places the files after them); the others
    are read and filtered in Arrow.
    """
    kept = {fragment.path for fragment in dataset.get_fragments(filter=condition)}
    pieces = []
    offset = 0
    for fragment in dataset.get_fragments():
        n_rows = fragment.count_rows()
        if fragment.path in kept:
            one = ds.FileSystemDataset(
                [fragment], dataset.schema, dataset.format, dataset.filesystem
            )
            table = one.to_table()
            table = table.append_column(
                _POSITION, pa.array(np.arange(offset, offset + table.num_rows, dtype=np.int64))
            )
            pieces.append(table.filter(condition))
        offset += n_rows
    if not pieces:
        empty = dataset.schema.empty_table().append_column(_POSITION, pa.array([], pa.int64()))
        pieces.append(empty)
    frame = arrow_to_frame(pa.concat_tables(pieces))
    return frame.set_index(_POSITION).rename_axis(None)


def _text_partitioning(folder: Path) -> ds.Partitioning | None:
    """Hive partitioning whose keys are read as text (None: the folder has no keys).

    Arrow would infer ``clinic_id=007`` as the integer 7: ids are text, and
    a leading zero is part of the id.
    """
    inferred = ds.dataset(folder, format="parquet", partitioning="hive").partitioning
    names = list(inferred.schema.names) if inferred is not None else []
    if not names:
        return None
    return ds.partitioning(pa.schema([(name, pa.string()) for name in names]), flavor="hive")
