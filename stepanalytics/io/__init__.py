"""Reading and writing cohort tables: the only layer that touches files."""

from stepanalytics.io.tables import RawCohort, read_raw_cohort, write_duckdb, write_tables

__all__ = ["RawCohort", "read_raw_cohort", "write_duckdb", "write_tables"]
