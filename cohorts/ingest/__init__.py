"""Readers for real cohorts: long CSV/Parquet, CDISC SDTM, OMOP CDM -> canonical tables + quarantine.

Every input lab row ends in exactly one of `labs` or `quarantine`; `validation.json` reconciles them.
"""

from cohorts.ingest.api import FORMATS, IngestResult, ingest, write_ingested

__all__ = ["FORMATS", "IngestResult", "ingest", "write_ingested"]
