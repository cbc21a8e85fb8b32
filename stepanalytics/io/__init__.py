"""Reading and writing cohort tables: the only layer that touches files."""

from stepanalytics.io.duckdb_store import write_duckdb
from stepanalytics.io.tables import RawCohort, read_raw_cohort, write_tables

__all__ = ["RawCohort", "read_raw_cohort", "write_duckdb", "write_tables"]
