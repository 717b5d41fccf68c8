"""Scoring on Apache Spark (optional extra: ``pip install 'crs-predict[spark]'``).

:func:`score_spark` runs :func:`models.predict.predict_cohort` — the code `crs score` and the
registered pyfunc run — per group of whole patients (``groupBy(pmod(xxhash64(patient_id),
G)).applyInPandas`` with an explicit output schema; why a key and not ``patient_id`` itself:
:mod:`features.spark`). Every input patient comes back with a status, exactly as on one machine.

The model: ``models:/name@alias`` is resolved ONCE on the driver to a version
(:func:`scoring.batch.load_model`); the bundle's files (booster ``.ubj``, feature state and
calibration JSON, meta) and the reference tables the driver used are shipped as bytes inside the
task closure, written to a local folder and loaded once per executor Python process (cached by
digest): every executor scores with the same version, without registry access of its own.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.spark import (
    EVENTS,
    GRADES,
    KEY,
    LABS,
    PATIENTS,
    at_least_cores,
    group_count,
    grouped_union,
    input_errors,
    lab_order,
    output_folder,
    patient_tables,
    plain,
    read_canonical,
    spark_session,
    table_of,
    text_id,
    write_parquet,
)
from scoring.batch import MODEL_COLUMNS, LoadedModel, ScoringError

INVALID = "_invalid"    # patients whose every lab row was quarantined (status invalid_input)


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


def default_chunk() -> int:
    """Patients per group by default: params score.chunk_patients (the single-machine chunk)."""
    from crs_settings import load_params

    return int(load_params()["score"]["chunk_patients"])


def resolve_model(model: str | LoadedModel) -> LoadedModel:
    """A URI is loaded (and an alias resolved to its version) once, here on the driver."""
    if isinstance(model, LoadedModel):
        return model
    from scoring.batch import load_model

    return load_model(model)


# ----------------------------------------------------------------------------- scoring

def output_struct(columns: list[str]):
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    return StructType([StructField(c, DoubleType() if c in ("landmark_hours", "probability")
                                   or c.endswith("_contribution") else StringType(), True) for c in columns])


def score_spark(spark_df_labs, spark_df_patients, model_uri: str | LoadedModel,
                landmarks: list[float] | None = None, *, events=None, grades=None, invalid_patients=None,
                as_of_latest: bool = False, reasons: str | None = None, patients_per_group: int | None = None,
                landmark_tolerance_hours: float | None = None, n_patients: int | None = None):
    """Score canonical Spark tables: one row per patient × landmark with a status (as
    `crs score`), as a lazy Spark DataFrame.

    `spark_df_labs` / `spark_df_patients` (/ `events`, `grades`): canonical columns (cohorts/schema.py);
    `events` / `grades` None: not recorded (treatment features / `current_grade` unknown).
    `model_uri`: `models:/name@alias` (resolved here, once, to a version), `models:/name/N`, a
    pyfunc folder, or a :class:`scoring.batch.LoadedModel`. `landmarks`: default the model's own.
    `invalid_patients`: a Spark DataFrame with a `patient_id` column (every lab row quarantined).
    Lab rows are filtered to the analytes the model reads and to the patients given: on these DataFrames,
    lab, event and grade rows of a patient `spark_df_patients` does not list are left out (check them first
    if that matters; `score_cohort_spark` on a canonical folder refuses them, as one machine does).
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
    per_patient = 1 if as_of_latest else len(landmarks)
    stamp = {"model_name": model.name, "model_version": model.version, "model_alias": model.alias,
             "scored_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    columns = [*output_columns(), *MODEL_COLUMNS]

    patients = text_id(spark_df_patients)
    if invalid_patients is not None:
        flagged = text_id(invalid_patients.select("patient_id")).distinct().withColumn(INVALID, F.lit(True))
        patients = patients.join(flagged, "patient_id", "left").withColumn(INVALID, F.coalesce(F.col(INVALID),
                                                                                           F.lit(False)))
    tables = patient_tables(patients, spark_df_labs, kf, events=events, grades=grades)
    n = int(n_patients if n_patients is not None else patients.count())
    n_groups = group_count(n, patients_per_group, default_chunk())
    n_groups = at_least_cores(spark_df_patients, n_groups)
    cols = {tag: list(df.columns) for tag, df in tables.items()}
    has_events, has_grades = events is not None, grades is not None
    options = {"reasons": reasons, "as_of_latest": as_of_latest, "landmark_tolerance_hours": tolerance}

    def score_group(pdf: pd.DataFrame) -> pd.DataFrame:
        from cohorts.schema import (
            canonical_events,
            canonical_grades,
            canonical_labs,
            canonical_patients,
        )
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
        lab_rows = canonical_labs(lab_order(table_of(pdf, LABS, cols[LABS])), file="labs")
        ev = canonical_events(table_of(pdf, EVENTS, cols[EVENTS]), file="events") if has_events else None
        gr = canonical_grades(table_of(pdf, GRADES, cols[GRADES]), file="grades") if has_grades else None
        result = predict_cohort(bundle, lab_rows, pats, landmarks if not as_of_latest else None, events=ev,
                                grades=gr, invalid_patients=invalid, **options)
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

            ingested = ingest_spark(spark, fmt, cohort, patients_per_group=patients_per_group)
            tables = ingested.tables
            invalid = ingested.invalid_patients
        n_patients = tables[PATIENTS].count()
        scores = score_spark(tables[LABS], tables[PATIENTS], model, landmarks, events=tables.get(EVENTS),
                             grades=tables.get(GRADES), invalid_patients=invalid, as_of_latest=as_of_latest, reasons=reasons,
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


