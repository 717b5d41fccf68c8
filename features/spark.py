"""Apache Spark plumbing and the landmark matrix on Spark (optional extra: ``pip install 'crs-predict[spark]'``).

The same per-patient pandas code as one machine, run where the data lives: each function here
applies project code (``KineticFeatures.build`` here; ``predict_cohort`` in :mod:`scoring.spark`)
by ``groupBy(key).applyInPandas(fn, schema)`` with an explicit output schema.

Why a key and not the raw ``patient_id``: every row of a patient must reach one pandas call, which
grouping by ``patient_id`` does, but then the pandas code runs once per patient (a fixed cost of
milliseconds each: hours per million patients). The key here is ``pmod(xxhash64(patient_id), G)``:
a function of the patient id, so a patient's lab, event, grade and patient rows, from any file or
partition, still land in one call, and each call handles about ``patients_per_group`` patients at
once, as one machine does chunk by chunk (``patients_per_group=1`` groups by ``patient_id``
itself). Results never depend on the grouping (tested against one machine, row for row).

The patients table is one side of the grouped union, so a patient without any lab row still
reaches a call: input patients = output patients. PySpark is imported inside the functions only.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohorts.canonical_folder import require_tables
from cohorts.errors import CohortError

TAG = "_table"          # which table a row of the grouped union came from
KEY = "_group"          # the grouping key (a function of patient_id)
LABS, PATIENTS, EVENTS, GRADES = "labs", "patients", "events", "grades"
LAB_COLUMNS = ["analyte", "hours_since_infusion", "value", "censor", "resulted_hours", "source_row"]
INSTALL_HINT = "install the Spark extra: pip install 'crs-predict[spark]' (PySpark 4, Java 17)"


# ----------------------------------------------------------------------------- session

def spark_session(master: str | None = None, app_name: str = "crs-predict",
                  config: dict[str, str] | None = None):
    """A SparkSession (the active one if there is one). Arrow on, UTC session time, the executors'
    Python = this interpreter unless PYSPARK_PYTHON says otherwise (a local run needs the venv's
    Python, which has pandas and the project)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise CohortError(f"--engine spark needs PySpark: {INSTALL_HINT}") from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    settings = {"spark.sql.execution.arrow.pyspark.enabled": "true", "spark.sql.session.timeZone": "UTC",
                "spark.ui.showConsoleProgress": "false", "spark.ui.enabled": "false"}
    for key, value in {**settings, **(config or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def input_errors() -> Iterator[None]:
    """An input problem raised inside an executor (cohorts.errors.CohortError: a bad canonical table)
    reaches the driver wrapped in a Spark exception: answer it as the same one-line input error."""
    try:
        yield
    except CohortError:
        raise
    except Exception as exc:
        text = str(exc)
        found = re.search(r"(?:CohortError|ScoringError|InputProblem): (.+)", text)
        if found and type(exc).__module__.startswith(("pyspark", "py4j")):
            raise CohortError(found.group(1).strip()) from exc
        raise


# ----------------------------------------------------------------------------- grouping

def text_id(df):
    from pyspark.sql import functions as F

    return df.withColumn("patient_id", F.col("patient_id").cast("string"))


def grouped_union(tables: dict[str, Any], n_groups: int | None):
    """One DataFrame of every table's rows, columns prefixed by table (`labs__value`), a `_table`
    tag and the grouping key; `n_groups=None` groups by patient_id itself."""
    from pyspark.sql import functions as F

    parts = []
    for tag, df in tables.items():
        cols = [F.col("patient_id").cast("string").alias("patient_id"), F.lit(tag).alias(TAG)]
        cols += [F.col(f"`{c}`").alias(f"{tag}__{c}") for c in df.columns if c != "patient_id"]
        parts.append(df.select(*cols))
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part, allowMissingColumns=True)
    key = F.col("patient_id") if n_groups is None else F.pmod(F.xxhash64("patient_id"), F.lit(int(n_groups)))
    return union.withColumn(KEY, key)


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as Python objects for Spark's Arrow writer (pandas 3's Arrow-backed `str`
    columns reach it as chunked arrays, which PySpark 4 cannot take)."""
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype) and frame[c].dtype != object]
    if not text:
        return frame
    return frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), None) for c in text})


def at_least_cores(df, n_groups: int | None) -> int | None:
    """At least one group per core of the session (a small cohort still runs on every core);
    grouping never changes results."""
    if n_groups is None:
        return None
    try:
        cores = int(df.sparkSession.sparkContext.defaultParallelism)
    except Exception:  # Spark Connect has no SparkContext: keep G
        return n_groups
    return max(n_groups, cores)


def table_of(pdf: pd.DataFrame, tag: str, columns: list[str]) -> pd.DataFrame:
    """The rows of one table back out of a group of the union, with their own column names."""
    take = np.flatnonzero((pdf[TAG] == tag).to_numpy())
    out = {"patient_id": pdf["patient_id"].to_numpy()[take]}
    for c in columns:
        if c != "patient_id":
            out[c] = pdf[f"{tag}__{c}"].to_numpy()[take]
    return pd.DataFrame(out)


def group_count(n_patients: int, patients_per_group: int | None, default: int) -> int | None:
    """G for the key pmod(xxhash64(patient_id), G); None = group by patient_id itself."""
    if patients_per_group is not None and int(patients_per_group) < 1:
        raise CohortError(f"patients per group must be >= 1; got {patients_per_group}")
    if patients_per_group == 1:
        return None
    per = int(patients_per_group or default)
    return max(1, -(-int(n_patients) // per))


def lab_order(labs: pd.DataFrame) -> pd.DataFrame:
    """A group's lab rows in a fixed order (Spark hands them over in any order): input row order
    (`source_row`) where the table has it, as a canonical file read in order gives them."""
    if labs.empty or "source_row" not in labs:
        return labs
    rows = pd.to_numeric(labs["source_row"], errors="coerce").to_numpy("float64")
    return labs.iloc[np.argsort(rows, kind="stable")].reset_index(drop=True)


def patient_tables(patients, spark_df_labs, features, *, events=None, grades=None) -> dict[str, Any]:
    """The tables one grouped call sees, keyed by tag: `patients` as given (ids as text), lab rows of
    the analytes `features` reads, and events and grades (when given), each restricted to those
    patients (rows of a patient the patients table does not list are left out, as the semi-join says)."""
    from pyspark.sql import functions as F

    codes = [*features.analytes, *features.covariate_analytes]
    ids = patients.select("patient_id")
    labs = text_id(spark_df_labs).where(F.col("analyte").isin(codes)).join(ids, "patient_id", "left_semi")
    labs = labs.select("patient_id", *[c for c in LAB_COLUMNS if c in spark_df_labs.columns])
    tables = {PATIENTS: patients, LABS: labs}
    if events is not None:
        tables[EVENTS] = text_id(events).join(ids, "patient_id", "left_semi")
    if grades is not None:  # grouped with the patient like events: the grade course reaches the same call
        tables[GRADES] = text_id(grades).join(ids, "patient_id", "left_semi")
    return tables


# ----------------------------------------------------------------------------- features

def featurize_spark(spark_df_labs, spark_df_patients, features, landmarks: list[float], *, events=None,
                    grades=None, patients_per_group: int | None = None, n_patients: int | None = None,
                    schema=None):
    """The landmark matrix of canonical Spark tables (one row per patient × landmark), built by
    ``KineticFeatures.build`` per group: the same code and columns as `crs featurize`.

    `schema`: the Spark output schema; default from the matrix of one tiny sample group
    (:func:`matrix_struct`)."""

    landmarks = [float(x) for x in landmarks]
    patients = text_id(spark_df_patients)
    tables = patient_tables(patients, spark_df_labs, features, events=events, grades=grades)
    cols = {tag: list(df.columns) for tag, df in tables.items()}
    if schema is None:
        schema = matrix_struct(features, landmarks, tables, cols)
    names = [f.name for f in schema.fields]
    n = int(n_patients if n_patients is not None else patients.count())
    n_groups = group_count(n, patients_per_group, int(features.chunk_patients))
    n_groups = at_least_cores(spark_df_patients, n_groups)

    def featurize_group(pdf: pd.DataFrame) -> pd.DataFrame:
        return plain(_matrix_of(pdf, features, landmarks, cols)[names])

    return grouped_union(tables, n_groups).groupBy(KEY).applyInPandas(featurize_group, schema)


def _matrix_of(pdf: pd.DataFrame, features, landmarks: list[float], cols: dict[str, list[str]]) -> pd.DataFrame:
    from cohorts.schema import (
        canonical_events,
        canonical_grades,
        canonical_labs,
        canonical_patients,
    )

    pats = canonical_patients(table_of(pdf, PATIENTS, cols[PATIENTS]), file="patients")
    pats = pats.sort_values("patient_id", kind="mergesort").reset_index(drop=True)
    lab_rows = canonical_labs(lab_order(table_of(pdf, LABS, cols[LABS])), file="labs")
    ev = canonical_events(table_of(pdf, EVENTS, cols[EVENTS]), file="events") if EVENTS in cols else None
    gr = canonical_grades(table_of(pdf, GRADES, cols[GRADES]), file="grades") if GRADES in cols else None
    return features.build(lab_rows, pats, landmarks, events=ev, grades=gr)


def matrix_struct(features, landmarks: list[float], tables: dict[str, Any], cols: dict[str, list[str]],
                  sample_patients: int = 50):
    """The Spark schema of the landmark matrix: built on the driver from a few patients' rows."""
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    sample_ids = tables[PATIENTS].select("patient_id").limit(sample_patients)
    parts = {tag: (df if tag == PATIENTS else df.join(sample_ids, "patient_id", "left_semi"))
             for tag, df in tables.items()}
    parts[PATIENTS] = tables[PATIENTS].join(sample_ids, "patient_id", "left_semi")
    pdf = grouped_union(parts, 1).toPandas()
    matrix = _matrix_of(pdf, features, landmarks, cols)

    def kind(dtype):
        if pd.api.types.is_bool_dtype(dtype):
            return BooleanType()
        if pd.api.types.is_integer_dtype(dtype):
            return LongType()
        if pd.api.types.is_float_dtype(dtype):
            return DoubleType()
        return StringType()

    return StructType([StructField(c, kind(matrix[c].dtype), True) for c in matrix.columns])


# ----------------------------------------------------------------------------- reading and writing

def read_canonical(spark, folder: Path) -> dict[str, Any]:
    """The canonical tables of a folder as Spark DataFrames (labs.parquet may be a folder of part
    files); `quarantine` is the invalid-input patients (quarantined ids with no lab row left)."""
    from pyspark.sql import functions as F

    folder = require_tables(folder)
    tables = {name: spark.read.parquet(str(folder / f"{name}.parquet"))
              for name in (LABS, PATIENTS, EVENTS, GRADES) if (folder / f"{name}.parquet").exists()}
    refuse_unknown_patients(tables, folder)
    qpath = folder / "quarantine.parquet"
    if qpath.exists():
        quarantined = text_id(spark.read.parquet(str(qpath)).select("patient_id")).where(
            F.col("patient_id").isNotNull() & (F.col("patient_id") != "")).distinct()
        with_labs = text_id(tables[LABS].select("patient_id"))
        tables["invalid"] = (quarantined.join(text_id(tables[PATIENTS].select("patient_id")), "patient_id",
                                              "left_semi").join(with_labs, "patient_id", "left_anti"))
    return tables


def refuse_unknown_patients(tables: dict[str, Any], folder: Path) -> None:
    """Lab, event and grade rows of a patient patients.parquet does not list are an input error, as
    on one machine (cohorts.schema.known_patients), not rows the grouping would silently leave out."""
    ids = text_id(tables[PATIENTS].select("patient_id"))
    for name in (LABS, EVENTS, GRADES):
        if name not in tables:
            continue
        orphan = text_id(tables[name].select("patient_id")).join(ids, "patient_id", "left_anti").limit(1).collect()
        if orphan:
            raise CohortError(f"{name} rows for patient {orphan[0]['patient_id']!r} who is not in patients.parquet",
                              file=str(folder / f"{name}.parquet"), column="patient_id")


def is_local(path: str | Path) -> bool:
    return "://" not in str(path) or str(path).startswith("file:")


@contextmanager
def output_folder(out: Path) -> Iterator[Path]:
    """Spark writes into a temporary sibling folder; it replaces `out` only when the job and the
    checks succeed (a local path: a failed run never leaves a partial output under the final name)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df, path: Path, partition_by: list[str] | None = None) -> None:
    writer = df.write.mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.parquet(str(path))


def featurize_folder_spark(cohort: Path | str, out: Path, features, landmarks: list[float], *,
                           patients_per_group: int | None = None, spark=None, master: str | None = None,
                           partition_by: list[str] | None = None) -> dict[str, int]:
    """`crs featurize --engine spark`: a canonical folder -> the landmark matrix as a Parquet folder."""
    out = Path(out)
    spark = spark or spark_session(master)
    with input_errors():
        tables = read_canonical(spark, Path(cohort))
        n_patients = tables[PATIENTS].count()
        matrix = featurize_spark(tables[LABS], tables[PATIENTS], features, landmarks, events=tables.get(EVENTS),
                                 grades=tables.get(GRADES), patients_per_group=patients_per_group,
                                 n_patients=n_patients)
        with output_folder(out) as tmp:
            write_parquet(matrix, tmp, partition_by)
            written = spark.read.parquet(str(tmp))
            rows = written.count()
            patients_out = written.select("patient_id").distinct().count()
            if rows != n_patients * len(set(landmarks)) or patients_out != n_patients:
                raise RuntimeError(f"internal: {n_patients} patients in, {patients_out} patients and {rows} rows out")
    return {"patients": int(n_patients), "rows": int(rows)}

