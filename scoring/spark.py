"""Scoring and feature building on Apache Spark (optional extra: ``pip install 'crs-predict[spark]'``).

The same per-patient pandas code as one machine, run where the data lives:
:func:`models.predict.predict_cohort` for scores and ``KineticFeatures.build`` for the landmark
matrix, each applied by ``groupBy(key).applyInPandas(fn, schema)`` with an explicit output schema.

Why a key and not the raw ``patient_id``: a pandas UDF must return as many rows as it receives,
so a model that maps many lab rows of a patient to a few output rows needs a grouped map; every
row of a patient must reach one call. Grouping by ``patient_id`` alone does that but calls the
pandas code once per patient (~ms of fixed cost each: hours per million patients). The key here is
``pmod(xxhash64(patient_id), G)``: still a function of the patient id, so a patient's rows (lab,
event, grade and patient rows, from any file or partition) always land in one call, but each call
scores about ``patients_per_group`` patients at once, as one machine does chunk by chunk
(``patients_per_group=1`` groups by ``patient_id`` itself). Results never depend on the grouping
(tested against one machine, row for row).

The model: ``models:/name@alias`` is resolved ONCE on the driver to a version
(:func:`scoring.batch.load_model`); the bundle's files (booster ``.ubj``, feature state and
calibration JSON, meta) and the reference tables the driver used are shipped as bytes inside the
task closure, written to a local folder and loaded once per executor Python process (cached by
digest): every executor scores with the same version, with no registry access from executors.

Input patients = output patients: the patients table is one side of the grouped union, so a
patient without lab rows still reaches a call and gets a status, as on one machine.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from scoring.batch import MODEL_COLUMNS, LoadedModel, ScoringError

TAG = "_table"          # which table a row of the grouped union came from
KEY = "_group"          # the grouping key (a function of patient_id)
INVALID = "_invalid"    # patients whose every lab row was quarantined (status invalid_input)
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
        raise ScoringError(f"--engine spark needs PySpark: {INSTALL_HINT}") from exc
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
    except ScoringError:
        raise
    except Exception as exc:
        text = str(exc)
        found = re.search(r"(?:CohortError|ScoringError|InputProblem): (.+)", text)
        if found and type(exc).__module__.startswith(("pyspark", "py4j")):
            raise ScoringError(found.group(1).strip()) from exc
        raise


# ----------------------------------------------------------------------------- the model, shipped

@dataclass(frozen=True)
class ShippedModel:
    """A model version as bytes: what every executor loads (once per process)."""

    name: str
    version: str
    alias: str
    uri: str
    digest: str
    bundle_files: dict[str, bytes] = field(repr=False)
    reference_files: dict[str, bytes] = field(repr=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def ship_model(model: LoadedModel) -> ShippedModel:
    """The driver's loaded model (alias already resolved to a version) and the reference tables it
    reads, as bytes with a digest."""
    from crs_settings import reference_dir

    with tempfile.TemporaryDirectory(prefix="crs-ship-") as tmp:
        model.bundle.save(tmp)
        bundle_files = _files(Path(tmp))
    reference_files = _files(reference_dir())
    h = hashlib.sha256()
    for part in (bundle_files, reference_files):
        for name, data in sorted(part.items()):
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return ShippedModel(model.name, model.version, model.alias, model.uri, h.hexdigest(), bundle_files,
                        reference_files)


_LOADED: dict[str, Any] = {}  # digest -> ModelBundle, per executor Python process


def executor_bundle(shipped: ShippedModel):
    """The shipped bundle, loaded once per Python process. Where the process has no project (a
    cluster node), the reference tables shipped from the driver serve (CRS_REFERENCE_DIR)."""
    bundle = _LOADED.get(shipped.digest)
    if bundle is not None:
        return bundle
    from models.bundle import ModelBundle

    folder = Path(tempfile.gettempdir()) / f"crs-model-{shipped.digest[:16]}-{os.getpid()}"
    for sub, files in (("bundle", shipped.bundle_files), ("reference", shipped.reference_files)):
        for name, data in files.items():
            path = folder / sub / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    os.environ.setdefault("CRS_REFERENCE_DIR", str(folder / "reference"))
    bundle = ModelBundle.load(folder / "bundle")
    bundle.booster.set_param({"nthread": 1})  # one Spark task = one core
    _LOADED[shipped.digest] = bundle
    return bundle


def resolve_model(model: str | LoadedModel) -> LoadedModel:
    """A URI is loaded (and an alias resolved to its version) once, here on the driver."""
    if isinstance(model, LoadedModel):
        return model
    from scoring.batch import load_model

    return load_model(model)


# ----------------------------------------------------------------------------- grouping

def _text_id(df):
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


def table_of(pdf: pd.DataFrame, tag: str, columns: list[str]) -> pd.DataFrame:
    """The rows of one table back out of a group of the union, with their own column names."""
    rows = pdf[(pdf[TAG] == tag).to_numpy()]
    out = pd.DataFrame({"patient_id": rows["patient_id"].to_numpy()})
    for c in columns:
        if c != "patient_id":
            out[c] = rows[f"{tag}__{c}"].to_numpy()
    return out


def group_count(n_patients: int, patients_per_group: int | None) -> int | None:
    """G for the key pmod(xxhash64(patient_id), G); None = group by patient_id itself."""
    if patients_per_group is not None and int(patients_per_group) < 1:
        raise ScoringError(f"patients per group must be >= 1; got {patients_per_group}")
    if patients_per_group == 1:
        return None
    per = int(patients_per_group or _default_chunk())
    return max(1, -(-int(n_patients) // per))


def _default_chunk() -> int:
    from crs_settings import load_params

    return int(load_params()["score"]["chunk_patients"])


# ----------------------------------------------------------------------------- scoring

def output_struct(columns: list[str]):
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    return StructType([StructField(c, DoubleType() if c in ("landmark_hours", "probability")
                                   or c.endswith("_contribution") else StringType(), True) for c in columns])


def score_spark(spark_df_labs, spark_df_patients, model_uri: str | LoadedModel,
                landmarks: list[float] | None = None, *, events=None, invalid_patients=None,
                as_of_latest: bool = False, reasons: str | None = None, patients_per_group: int | None = None,
                landmark_tolerance_hours: float | None = None, n_patients: int | None = None):
    """Score canonical Spark tables: one row per patient × landmark with a status (as
    `crs score`), as a lazy Spark DataFrame.

    `spark_df_labs` / `spark_df_patients` (/ `events`): canonical columns (cohorts/schema.py).
    `model_uri`: `models:/name@alias` (resolved here, once, to a version), `models:/name/N`, a
    pyfunc folder, or a :class:`scoring.batch.LoadedModel`. `landmarks`: default the model's own.
    `invalid_patients`: a Spark DataFrame with a `patient_id` column (every lab row quarantined).
    Lab rows are filtered to the analytes the model reads and to the patients given.
    """
    from pyspark.sql import functions as F

    from models.drivers import parse_reasons
    from models.predict import band_edges_of, landmark_tolerance, output_columns

    model = resolve_model(model_uri)
    bundle = model.bundle
    if as_of_latest and landmarks:
        raise ScoringError("Give either landmarks (e.g. 24,48) or as_of_latest, not both")
    if not as_of_latest:
        landmarks = sorted({float(x) for x in (landmarks or bundle.meta["landmarks_hours"])})
    parse_reasons(reasons, band_edges_of(bundle)[0])  # a bad policy fails on the driver, before any work
    tolerance = landmark_tolerance(landmark_tolerance_hours)  # the driver's params, not each executor's
    shipped = ship_model(model)
    kf = bundle.features
    codes = [*kf.analytes, *kf.covariate_analytes]
    per_patient = 1 if as_of_latest else len(landmarks)
    stamp = {"model_name": model.name, "model_version": model.version, "model_alias": model.alias,
             "scored_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    columns = [*output_columns(), *MODEL_COLUMNS]

    patients = _text_id(spark_df_patients)
    if invalid_patients is not None:
        flagged = _text_id(invalid_patients.select("patient_id")).distinct().withColumn(INVALID, F.lit(True))
        patients = patients.join(flagged, "patient_id", "left").withColumn(INVALID, F.coalesce(F.col(INVALID),
                                                                                           F.lit(False)))
    ids = patients.select("patient_id")
    labs = _text_id(spark_df_labs).where(F.col("analyte").isin(codes)).join(ids, "patient_id", "left_semi")
    labs = labs.select("patient_id", *[c for c in LAB_COLUMNS if c in spark_df_labs.columns])
    tables = {PATIENTS: patients, LABS: labs}
    if events is not None:
        tables[EVENTS] = _text_id(events).join(ids, "patient_id", "left_semi")
    n = int(n_patients if n_patients is not None else patients.count())
    n_groups = group_count(n, patients_per_group)
    cols = {tag: list(df.columns) for tag, df in tables.items()}
    has_events = events is not None
    options = {"reasons": reasons, "as_of_latest": as_of_latest, "landmark_tolerance_hours": tolerance}

    def score_group(pdf: pd.DataFrame) -> pd.DataFrame:
        from cohorts.schema import canonical_events, canonical_labs, canonical_patients
        from models.predict import predict_cohort

        bundle = executor_bundle(shipped)
        pats = table_of(pdf, PATIENTS, cols[PATIENTS])
        if pats.empty:  # a group of lab rows only cannot happen (labs are semi-joined to patients)
            return empty_frame(struct)
        invalid = None
        if INVALID in pats:
            flagged = pats[INVALID].fillna(False).astype(bool).to_numpy()
            invalid = set(pats.loc[flagged, "patient_id"].astype(str)) or None
            pats = pats.drop(columns=[INVALID])
        pats = canonical_patients(pats, file="patients")
        pats = pats.sort_values("patient_id", kind="mergesort").reset_index(drop=True)
        lab_rows = canonical_labs(_lab_order(table_of(pdf, LABS, cols[LABS])), file="labs")
        ev = canonical_events(table_of(pdf, EVENTS, cols[EVENTS]), file="events") if has_events else None
        result = predict_cohort(bundle, lab_rows, pats, landmarks if not as_of_latest else None, events=ev,
                                invalid_patients=invalid, **options)
        if len(result) != len(pats) * per_patient:
            raise RuntimeError(f"internal: {len(pats)} patients gave {len(result)} rows")
        return plain(result.assign(**stamp)[columns])

    struct = output_struct(columns)
    union = grouped_union(tables, n_groups)
    return union.groupBy(KEY).applyInPandas(score_group, struct)


def empty_frame(struct) -> pd.DataFrame:
    from pyspark.sql.types import DoubleType

    return pd.DataFrame({f.name: pd.Series(dtype="float64" if isinstance(f.dataType, DoubleType) else object)
                         for f in struct.fields})


def _lab_order(labs: pd.DataFrame) -> pd.DataFrame:
    """A group's lab rows in a fixed order (Spark hands them over in any order): by patient, then
    input row, then time, as a canonical file grouped by patient reads."""
    if labs.empty:
        return labs
    keys = [c for c in ("patient_id", "source_row", "analyte", "hours_since_infusion") if c in labs]
    return labs.sort_values(keys, kind="mergesort").reset_index(drop=True)


# ----------------------------------------------------------------------------- features

def featurize_spark(spark_df_labs, spark_df_patients, features, landmarks: list[float], *, events=None,
                    grades=None, patients_per_group: int | None = None, n_patients: int | None = None,
                    schema=None):
    """The landmark matrix of canonical Spark tables (one row per patient × landmark), built by
    ``KineticFeatures.build`` per group: the same code and columns as `crs featurize`.

    `schema`: the Spark output schema; default from the matrix of one tiny sample group
    (:func:`matrix_struct`)."""
    from pyspark.sql import functions as F

    codes = [*features.analytes, *features.covariate_analytes]
    landmarks = [float(x) for x in landmarks]
    patients = _text_id(spark_df_patients)
    ids = patients.select("patient_id")
    labs = _text_id(spark_df_labs).where(F.col("analyte").isin(codes)).join(ids, "patient_id", "left_semi")
    labs = labs.select("patient_id", *[c for c in LAB_COLUMNS if c in spark_df_labs.columns])
    tables = {PATIENTS: patients, LABS: labs}
    if events is not None:
        tables[EVENTS] = _text_id(events).join(ids, "patient_id", "left_semi")
    if grades is not None:
        tables[GRADES] = _text_id(grades).join(ids, "patient_id", "left_semi")
    cols = {tag: list(df.columns) for tag, df in tables.items()}
    if schema is None:
        schema = matrix_struct(features, landmarks, tables, cols)
    names = [f.name for f in schema.fields]
    n = int(n_patients if n_patients is not None else patients.count())
    n_groups = group_count(n, patients_per_group)

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
    lab_rows = canonical_labs(_lab_order(table_of(pdf, LABS, cols[LABS])), file="labs")
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

    folder = Path(folder)
    if not folder.is_dir():
        raise ScoringError(f"Cohort folder {folder} does not exist or is not a folder "
                           "(give a folder of canonical tables, or an input path with --format)")
    for name in (LABS, PATIENTS):
        if not (folder / f"{name}.parquet").exists():
            raise ScoringError(f"Cohort folder {folder} has no {name}.parquet (expected the canonical tables "
                               "written by `crs simulate` or `crs ingest`; other layouts need --format)",
                               file=str(folder / f"{name}.parquet"))
    tables = {name: spark.read.parquet(str(folder / f"{name}.parquet"))
              for name in (LABS, PATIENTS, EVENTS, GRADES) if (folder / f"{name}.parquet").exists()}
    qpath = folder / "quarantine.parquet"
    if qpath.exists():
        quarantined = _text_id(spark.read.parquet(str(qpath)).select("patient_id")).where(
            F.col("patient_id").isNotNull() & (F.col("patient_id") != "")).distinct()
        with_labs = _text_id(tables[LABS].select("patient_id"))
        tables["invalid"] = (quarantined.join(_text_id(tables[PATIENTS].select("patient_id")), "patient_id",
                                              "left_semi").join(with_labs, "patient_id", "left_anti"))
    return tables


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


def score_cohort_spark(cohort: Path | str, model_uri: str, out: Path, *, fmt: str | None = None,
                       landmarks: list[float] | None = None, as_of_latest: bool = False,
                       reasons: str | None = None, patients_per_group: int | None = None,
                       partition_by: list[str] | None = None, spark=None, master: str | None = None,
                       model: LoadedModel | None = None,
                       landmark_tolerance_hours: float | None = None) -> dict[str, Any]:
    """`crs score --engine spark`: read the cohort with Spark (a canonical folder, or `fmt` long/omop
    through :mod:`scoring.spark_ingest`), score, write a Parquet folder at `out`, check that every
    input patient came back (× landmarks), and return the run summary (as `crs score`)."""
    from scoring.batch import side_file, trained_range_warnings

    t0 = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() == ".csv":
        raise ScoringError("--engine spark writes Parquet: give --out a folder name such as scores.parquet")
    if as_of_latest and landmarks:
        raise ScoringError("Give either --landmarks (e.g. 24,48) or --as-of latest")
    model = model or resolve_model(model_uri)
    if not as_of_latest and not landmarks:
        landmarks = [float(x) for x in model.bundle.meta["landmarks_hours"]]
    spark = spark or spark_session(master)
    ingest_summary = None
    with input_errors():
        if fmt is None:
            tables = read_canonical(spark, Path(cohort))
            invalid = tables.get("invalid")
        else:
            from scoring.spark_ingest import ingest_spark

            ingested = ingest_spark(spark, fmt, cohort)
            tables = ingested.tables
            invalid = ingested.invalid_patients
        n_patients = tables[PATIENTS].count()
        scores = score_spark(tables[LABS], tables[PATIENTS], model, landmarks, events=tables.get(EVENTS),
                             invalid_patients=invalid, as_of_latest=as_of_latest, reasons=reasons,
                             patients_per_group=patients_per_group,
                             landmark_tolerance_hours=landmark_tolerance_hours, n_patients=n_patients)
        per_patient = 1 if as_of_latest else len(set(landmarks))
        with output_folder(out) as tmp:
            write_parquet(scores, tmp, partition_by)
            written = spark.read.parquet(str(tmp))
            by_status = {r["status"]: int(r["count"]) for r in written.groupBy("status").count().collect()}
            rows = sum(by_status.values())
            patients_out = written.select("patient_id").distinct().count()
            if rows != n_patients * per_patient or patients_out != n_patients:
                raise RuntimeError(f"internal: {n_patients} patients in, {patients_out} patients and {rows} rows out "
                                   f"(expected {n_patients * per_patient})")
            if fmt is not None:
                ingest_summary = ingested.write_side_files(out, tmp.parent)
    seconds = time.perf_counter() - t0
    from models.predict import STATUSES

    counts = pd.Series({s: by_status.get(s, 0) for s in STATUSES}, dtype="int64")
    summary = {"engine": "spark", "patients_read": int(n_patients), "rows_written": int(rows),
               "rows_scored": int(by_status.get("scored", 0)),
               "by_status": {k: int(v) for k, v in counts.items() if v},
               "landmarks": "latest" if as_of_latest else sorted(set(landmarks)), "seconds": round(seconds, 2),
               "patients_per_s": round(n_patients / seconds) if seconds > 0 else None,
               "model": {"uri": model.uri, "name": model.name, "version": model.version, "alias": model.alias},
               "out": str(out),
               "warnings": trained_range_warnings(model, None if as_of_latest else landmarks, counts,
                                                  landmark_tolerance_hours)}
    if ingest_summary is not None:
        summary["quarantine"] = ingest_summary | {"path": str(side_file(out, "quarantine.parquet"))}
    return summary


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
