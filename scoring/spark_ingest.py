"""Long and OMOP cohorts through Spark, harmonised by the same cohorts.ingest code as one machine.

The split (documented in the README):
- the driver opens the source with the ordinary reader (`cohorts.ingest.long.open_long` /
  `cohorts.ingest.omop.open_omop`): the patient-side tables — patients or person, drug_exposure
  (day 0, treatments), condition_occurrence / observation (outcomes), observation_period / death —
  one row or a few per patient, read with pandas exactly as on one machine;
- Spark reads the big lab table (labs / measurement: CSV, Parquet, or a Spark table), numbers its
  rows in input order (`_row`: what one machine calls the row's position), and groups them by a
  function of the patient id, so every row of a patient reaches one pandas call;
- each call runs the reader's own row conversion (`Source.raw_rows`), `harmonise_chunk` (names,
  units, values, times, plausibility -> lab rows or quarantine), and the duplicate rule (first in
  input order, complete because the group holds whole patients), and returns canonical lab rows,
  quarantine rows and its partial counts;
- the driver adds the counts up into validation.json (rows in = out + quarantined, by reason and by
  analyte, mixed units, missing baselines, result times, follow-up) — the same numbers as one
  machine (tested) — and raises each patient's follow-up to the last lab draw as one machine does.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.spark import plain
from scoring.batch import ScoringError

RAW_KEY = "_pid"   # the patient id as text, for grouping the raw rows
ROW = "_row"       # input row number, 0-based, in file order
KIND = "_kind"     # lab | quarantine | stats
STATS = "_stats"
Q_PREFIX = "q_"
OMOP_TABLES = ("person", "measurement", "drug_exposure", "condition_occurrence", "observation",
               "observation_period", "death", "concept")


@dataclass
class SparkIngest:
    """Canonical tables as Spark DataFrames, with the quarantine and the reconciled validation report."""

    tables: dict[str, Any]
    invalid_patients: Any
    quarantine: Any
    validation: dict[str, Any]
    patients_pdf: pd.DataFrame = field(repr=False, default=None)
    n_invalid: int = 0

    def write_side_files(self, out: Path, folder: Path | None = None) -> dict[str, Any]:
        """<out>.quarantine.parquet (a Spark folder) and <out>.validation.json beside the output."""
        from scoring.batch import side_file

        qpath = side_file(Path(out), "quarantine.parquet")
        self.quarantine.write.mode("overwrite").parquet(str(qpath))
        side_file(Path(out), "validation.json").write_text(
            json.dumps(self.validation, indent=2, sort_keys=True, default=str) + "\n")
        return {"rows": int(self.validation["rows_quarantined"]),
                "patients_invalid_input": int(self.n_invalid)}


# ----------------------------------------------------------------------------- reading

def _lower(df):
    return df.toDF(*[c.strip().lower() for c in df.columns])


def read_lab_table(spark, path: str | Path, text_columns: dict[str, str]):
    """The lab table as Spark reads it: Parquet as stored; CSV with every column in `text_columns`
    as text (the readers' `TEXT`: no number guessing) and the others inferred, as pandas does."""
    from pyspark.sql.types import StringType, StructField, StructType

    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return _lower(spark.read.parquet(str(path)))
    if path.suffix.lower() != ".csv":
        raise ScoringError(f"--engine spark reads lab tables from CSV or Parquet; got {path.name}", file=str(path))
    options = {"header": "true", "ignoreLeadingWhiteSpace": "true", "encoding": "UTF-8", "multiLine": "false"}
    inferred = spark.read.options(inferSchema="true", **options).csv(str(path)).schema
    schema = StructType([StructField(f.name, StringType() if f.name.strip().lower() in text_columns else f.dataType,
                                     True) for f in inferred])
    return _lower(spark.read.options(**options).schema(schema).csv(str(path)))


def number_rows(spark, df):
    """`_row`: each row's number in input order, 0-based (Spark reads a file's splits in order;
    monotonically_increasing_id = partition << 33 | position in the partition)."""
    from pyspark.sql import functions as F

    marked = df.withColumn("_mono", F.monotonically_increasing_id())
    part = F.shiftright(F.col("_mono"), 33)
    counts = sorted((int(r["_part"]), int(r["count"]))
                    for r in marked.select(part.alias("_part")).groupBy("_part").count().collect())
    first, offsets = 0, []
    for p, n in counts:
        offsets += [F.lit(p), F.lit(first)]
        first += n
    start = F.create_map(*offsets)[part] if offsets else F.lit(0)
    local = F.col("_mono") - F.shiftleft(part, 33)
    return marked.withColumn(ROW, (start + local).cast("long")).drop("_mono"), first


def _omop_from_catalog(spark, database: str, scratch: Path) -> tuple[Path, Any]:
    """OMOP tables of a Spark database: the patient-side tables copied to a scratch folder for the
    reader (one row or a few per patient), the measurement table left in Spark."""
    names = {t for t in OMOP_TABLES if _table_exists(spark, f"{database}.{t}")}
    for required in ("person", "measurement"):
        if required not in names:
            raise ScoringError(f"The Spark database {database!r} has no {required} table")
    measurement = _lower(spark.table(f"{database}.measurement"))
    for name in names - {"measurement"}:
        spark.table(f"{database}.{name}").toPandas().to_parquet(scratch / f"{name}.parquet", index=False)
    measurement.limit(0).toPandas().to_parquet(scratch / "measurement.parquet", index=False)  # columns only
    return scratch, measurement


def _table_exists(spark, name: str) -> bool:
    try:
        return bool(spark.catalog.tableExists(name))
    except Exception:  # an unknown database raises in some catalogs instead of answering False
        return False


# ----------------------------------------------------------------------------- harmonising

def _lab_struct():
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    from cohorts.ingest.harmonise import QUARANTINE_COLUMNS

    lab = [("patient_id", StringType()), ("analyte", StringType()), ("hours_since_infusion", DoubleType()),
           ("value", DoubleType()), ("censor", StringType()), ("resulted_hours", DoubleType()),
           ("source_row", LongType())]
    quarantine = [(Q_PREFIX + c, LongType() if c == "source_row" else StringType()) for c in QUARANTINE_COLUMNS]
    return StructType([StructField(KIND, StringType()), *[StructField(n, t, True) for n, t in lab + quarantine],
                       StructField(STATS, StringType(), True)])


def harmonise_group(raw: pd.DataFrame, source, known: pd.Index, window: tuple[float, float],
                    units_canonical: bool) -> dict[str, Any]:
    """One group of whole patients' raw lab rows (sorted by `_row`) -> canonical lab rows, quarantine
    rows and partial counts, with the functions one machine runs (cohorts.ingest)."""
    from cohorts.ingest.harmonise import empty_quarantine, harmonise_chunk
    from cohorts.ingest.reconcile import (
        canonical_lab_table,
        drop_duplicates,
        mixed_units,
        no_baseline,
    )
    from cohorts.registry import default_turnaround_hours
    from cohorts.schema import result_time_counts

    rows = raw[ROW].to_numpy("int64")
    chunk = raw.drop(columns=[ROW, RAW_KEY], errors="ignore").reset_index(drop=True)
    contract = source.raw_rows(chunk, rows)
    part = harmonise_chunk(contract, source.lab_file, known, window, offset=0)
    labs = part.labs.assign(_seq=rows[part.labs["_seq"].to_numpy("int64")])  # input order across the file
    units = labs[["patient_id", "analyte", "unit_key"]].drop_duplicates()
    labs, dup_q = drop_duplicates(labs.drop(columns="unit_key"), source.lab_file)
    quarantine = pd.concat([q for q in (part.quarantine, dup_q) if len(q)] or [empty_quarantine()],
                           ignore_index=True)
    labs = canonical_lab_table(labs)
    mixed = mixed_units(units) if not units_canonical else {"patient_analyte_series": 0, "examples": []}
    with_labs = set(labs["patient_id"].astype(str))
    quarantined = set(quarantine["patient_id"].astype(str)) - {""}
    stats = {
        "rows_in": int(len(raw)), "rows_out": int(len(labs)), "rows_quarantined": int(len(quarantine)),
        "in_by_analyte": {str(k): int(v) for k, v in part.counts_in.items()},
        "out_by_analyte": {str(k): int(v) for k, v in labs["analyte"].value_counts().items()},
        "q_by_reason": {str(k): int(v) for k, v in quarantine["reason"].value_counts().items()},
        "q_by_code": {str(k): int(v) for k, v in
                      quarantine["analyte_code"].replace("", "(unrecognised)").value_counts().items()},
        "patients_with_labs": len(with_labs),
        "no_baseline": no_baseline(labs, None),
        "mixed_series": int(mixed["patient_analyte_series"]), "mixed_examples": mixed["examples"],
        "result_times": result_time_counts(labs, default_turnaround_hours()),
        "last_draw": {str(k): float(v) for k, v in
                      labs.groupby("patient_id", sort=False)["hours_since_infusion"].max().items()},
        "invalid": sorted((quarantined & set(known.intersection(list(quarantined)))) - with_labs),
    }
    return {"labs": labs, "quarantine": quarantine, "stats": stats}


def _tagged(result: dict[str, Any], names: list[str]) -> pd.DataFrame:
    labs, q = result["labs"], result["quarantine"]
    lab_part = labs.assign(**{KIND: "lab"})
    q_part = q.rename(columns=lambda c: Q_PREFIX + c).assign(**{KIND: "quarantine"})
    stats = pd.DataFrame({KIND: ["stats"], STATS: [json.dumps(result["stats"])]})
    out = pd.concat([lab_part, q_part, stats], ignore_index=True)
    for name in names:
        if name not in out:
            out[name] = None
    return plain(out[names])


def _merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"rows_in": 0, "rows_out": 0, "rows_quarantined": 0, "patients_with_labs": 0,
                             "mixed_series": 0, "mixed_examples": [], "in_by_analyte": {}, "out_by_analyte": {},
                             "q_by_reason": {}, "q_by_code": {}, "no_baseline": {}, "result_times": {},
                             "last_draw": {}, "invalid": []}
    for s in parts:
        for key in ("rows_in", "rows_out", "rows_quarantined", "patients_with_labs", "mixed_series"):
            total[key] += s[key]
        for key in ("in_by_analyte", "out_by_analyte", "q_by_reason", "q_by_code", "no_baseline"):
            for k, v in s[key].items():
                total[key][k] = total[key].get(k, 0) + v
        for code, c in s["result_times"].items():
            t = total["result_times"].setdefault(code, dict.fromkeys(("rows", "without_result_time",
                                                                      "assumed_later_than_draw"), 0))
            for k in ("rows", "without_result_time", "assumed_later_than_draw"):
                t[k] += c[k]
            t["turnaround_hours"] = c["turnaround_hours"]
        total["mixed_examples"] += s["mixed_examples"]
        total["last_draw"].update(s["last_draw"])
        total["invalid"] += s["invalid"]
    # one machine lists the first 10 series in (patient, analyte) order
    total["mixed_examples"] = sorted(total["mixed_examples"], key=lambda e: (e["patient_id"], e["analyte"]))[:10]
    total["result_times"] = {k: {kk: total["result_times"][k][kk] for kk in
                                 ("rows", "without_result_time", "turnaround_hours", "assumed_later_than_draw")}
                             for k in sorted(total["result_times"])}
    return total


def validation_of(total: dict[str, Any], source, patients: pd.DataFrame, events, grades, fmt: str, path: Path,
                  window: tuple[float, float]) -> tuple[dict[str, Any], pd.DataFrame]:
    """validation.json from the added-up counts (the keys and rules of cohorts.ingest.api.ingest) and
    the patients with follow-up raised to their last lab draw where it came from record dates."""
    from cohorts.ingest.harmonise import REASONS
    from cohorts.ingest.reconcile import (
        DUPLICATE_RULE,
        extend_followup,
        outcome_report,
        result_time_note,
    )
    from cohorts.registry import core_analytes

    if source.followup_from_records:
        last = pd.Series(total["last_draw"], dtype="float64")
        patients = extend_followup(patients, pd.DataFrame({"patient_id": last.index.astype(str),
                                                           "hours_since_infusion": last.to_numpy()}))
    notes = list(source.notes)
    result_times = result_time_note(total["result_times"], notes)
    outcomes = outcome_report(patients, notes)
    extra = {
        "format": fmt, "input": str(path), "lab_file": source.lab_file,
        "patients_in": int(len(patients)), "patients_with_labs": int(total["patients_with_labs"]),
        "events_recorded": events is not None, "events_out": int(len(events)) if events is not None else 0,
        "grade_course_rows": int(len(grades)) if grades is not None else 0,
        "result_times": result_times, "outcomes": outcomes, "time_window_hours": list(window),
        "mixed_units": {"patient_analyte_series": int(total["mixed_series"]), "examples": total["mixed_examples"]},
        "patients_without_baseline": {c: int(total["no_baseline"][c]) for c in core_analytes()
                                      if c in total["no_baseline"]},
        "notes": notes,
    }
    by_reason = dict(sorted(total["q_by_reason"].items()))
    analytes = sorted(set(total["in_by_analyte"]) | set(total["out_by_analyte"]) | set(total["q_by_code"]))
    report = {
        "rows_in": int(total["rows_in"]), "rows_out": int(total["rows_out"]),
        "rows_quarantined": int(total["rows_quarantined"]),
        "by_reason": {str(k): int(v) for k, v in by_reason.items()},
        "by_analyte": {a: {"in": int(total["in_by_analyte"].get(a, 0)), "out": int(total["out_by_analyte"].get(a, 0)),
                           "quarantined": int(total["q_by_code"].get(a, 0))} for a in analytes},
        "reasons_explained": {k: REASONS[k] for k in by_reason if k in REASONS},
        "duplicate_rule": DUPLICATE_RULE,
    } | extra
    if report["rows_in"] != report["rows_out"] + report["rows_quarantined"]:
        raise AssertionError(f"ingest lost rows: {report['rows_in']} in, {report['rows_out']} out, "
                             f"{report['rows_quarantined']} quarantined")
    return report, patients


def to_spark(spark, frame: pd.DataFrame):
    """A pandas table as a Spark DataFrame through Arrow (text columns with missing values stay text)."""
    import pyarrow as pa

    return spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))


def ingest_spark(spark, fmt: str, path: str | Path, *, patients_per_group: int | None = None,
                 window_hours: tuple[float, float] | None = None) -> SparkIngest:
    """`fmt` long or omop: the patient-side tables through the ordinary reader on the driver, the
    lab table through Spark, harmonised per group of whole patients (module doc). `path`: the input
    folder, or for OMOP the name of a Spark database holding the OMOP tables."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from cohorts.ingest.harmonise import DEFAULT_WINDOW_HOURS, QUARANTINE_COLUMNS
    from cohorts.schema import canonical_events, canonical_grades, canonical_patients
    from crs_settings import load_params
    from features.spark import group_count

    window = tuple(float(x) for x in (window_hours or DEFAULT_WINDOW_HOURS))
    if fmt not in ("long", "omop"):
        raise ScoringError(f"--engine spark reads --format long or omop (or a canonical folder); got {fmt!r}. "
                           "Ingest other formats first: crs ingest --format sdtm --input DIR --out COHORT")
    scratch = Path(tempfile.mkdtemp(prefix="crs-spark-ingest-"))
    lab_df = None
    folder = Path(path)
    if fmt == "omop" and not folder.exists():
        if not _table_exists(spark, f"{path}.person"):
            raise ScoringError(f"The input {path} is neither a folder nor a Spark database with OMOP tables "
                               f"({path}.person, {path}.measurement, ...)", file=str(path))
        folder, lab_df = _omop_from_catalog(spark, str(path), scratch)
    elif not folder.exists():
        raise ScoringError(f"The input {path} does not exist", file=str(path))
    if fmt == "omop":
        from cohorts.ingest.omop import TEXT, open_omop

        source = open_omop(folder, 1)
    else:
        from cohorts.ingest.long import TEXT, open_long

        source = open_long(folder, 1)
    if source.raw_rows is None:
        raise ScoringError(f"The {fmt} reader cannot hand its lab rows to Spark")
    if lab_df is None:
        lab_df = read_lab_table(spark, source.lab_file, TEXT)
    patients = canonical_patients(source.patients, file=source.provenance.get("patients_file"))
    known = pd.Index(patients["patient_id"])
    id_col = "person_id" if fmt == "omop" else "patient_id"
    lab_df, rows_in = number_rows(spark, lab_df)
    if rows_in == 0:
        raise ScoringError("The labs table has no data rows", file=source.lab_file)
    lab_df = lab_df.withColumn(RAW_KEY, F.trim(F.col(id_col).cast("string")))
    n_groups = group_count(len(known), patients_per_group, int(load_params()["score"]["chunk_patients"])) or max(1, len(known))
    grouped = lab_df.withColumn("_key", F.pmod(F.xxhash64(F.coalesce(F.col(RAW_KEY), F.lit(""))), F.lit(n_groups)))
    struct = _lab_struct()
    names = [f.name for f in struct.fields]
    shared = _share(spark, (_Rows(source.raw_rows, source.lab_file), known))
    units_canonical = bool(source.units_canonical)

    def ingest_group(pdf: pd.DataFrame) -> pd.DataFrame:
        src, ids = _shared_value(shared)
        raw = pdf.drop(columns=["_key"]).sort_values(ROW, kind="mergesort")
        return _tagged(harmonise_group(raw, src, ids, window, units_canonical), names)

    tagged = grouped.groupBy("_key").applyInPandas(ingest_group, struct).persist(StorageLevel.MEMORY_AND_DISK)
    parts = [json.loads(r[STATS]) for r in tagged.where(F.col(KIND) == "stats").select(STATS).collect()]
    total = _merge_stats(parts)
    if total["rows_in"] != rows_in:
        raise RuntimeError(f"internal: Spark read {rows_in} lab rows, the groups harmonised {total['rows_in']}")
    events = canonical_events(source.events) if source.events is not None else None
    grades = canonical_grades(source.grades)
    validation, patients = validation_of(total, source, patients, events, grades, fmt, Path(path), window)
    labs = tagged.where(F.col(KIND) == "lab").select("patient_id", "analyte", "hours_since_infusion", "value",
                                                     "censor", "resulted_hours", "source_row")
    quarantine = tagged.where(F.col(KIND) == "quarantine").select(
        *[F.col(Q_PREFIX + c).alias(c) for c in QUARANTINE_COLUMNS])
    tables = {"labs": labs, "patients": to_spark(spark, patients)}
    if events is not None:
        tables["events"] = to_spark(spark, events)
    if grades is not None:
        tables["grades"] = to_spark(spark, grades)
    invalid = (to_spark(spark, pd.DataFrame({"patient_id": pd.Series(total["invalid"], dtype=str)}))
               if total["invalid"] else None)
    return SparkIngest(tables, invalid, quarantine, validation, patients, len(total["invalid"]))


@dataclass(frozen=True)
class _Rows:
    """What an executor needs of the reader: its row conversion and the lab file's name."""

    raw_rows: Any
    lab_file: str


_SHARED: dict[int, Any] = {}  # broadcast id -> value, per executor Python process


def _share(spark, value: Any):
    """The reader's row conversion (a closure over day 0 per patient and the concept map) and the
    known patient ids, sent once per executor (a broadcast of cloudpickled bytes) instead of with
    every task."""
    import uuid

    from pyspark import cloudpickle

    return spark.sparkContext.broadcast((uuid.uuid4().hex, cloudpickle.dumps(value)))


def _shared_value(shared) -> Any:
    import pickle

    token, data = shared.value
    value = _SHARED.get(token)
    if value is None:
        value = _SHARED[token] = pickle.loads(data)
    return value
