"""`crs report`: one patient's kinetics, predicted risk and drivers as a self-contained HTML page.

The model scores the patient (:func:`models.predict.predict_cohort`, the code `crs score` and the
registered pyfunc run) at its trained landmarks and at each time a new result became available;
:mod:`reports` draws the page. `--all` writes one page per patient and an index into a folder.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

HELP = ("one patient's report as a self-contained HTML page: kinetics since infusion, predicted risk at each "
        "landmark and over time, drivers in plain words, treatments (research use only)")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", type=Path, required=True,
                   help="folder of canonical tables, or with --format any supported input")
    p.add_argument("--format", choices=["long", "sdtm", "omop"], default=None,
                   help="read the cohort through the ingest readers (default: a canonical folder)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--patient", default=None, help="the patient_id to report on (or --all; one of them is required, no default)")
    who.add_argument("--all", action="store_true", help="every patient of the cohort: --out is then a folder "
                     "(one PATIENT.html each and index.html)")
    p.add_argument("--model", default="models:/severe-crs@champion",
                   help="model URI (an alias is resolved to its version once), or a trained model folder such "
                        "as data/model")
    p.add_argument("--out", type=Path, required=True, help="FILE.html (--patient) or a folder (--all)")


# ----------------------------------------------------------------------------- reading

def _read(cohort: Path, fmt: str | None, ids: list[str] | None) -> tuple[Any, Any, Any, Any, dict]:
    """(labs, patients, events or None, grades or None, provenance) of the cohort, only `ids` when given."""
    import json

    from cohorts.errors import CohortError

    if fmt is not None:
        from cohorts.ingest import ingest

        c = ingest(fmt, cohort).cohort
        labs, patients, events, grades = c.labs, c.patients, c.events, c.grades
        if ids is not None:
            keep = set(ids)
            labs = labs[labs["patient_id"].astype(str).isin(keep)]
            patients = patients[patients["patient_id"].astype(str).isin(keep)]
            events = events[events["patient_id"].astype(str).isin(keep)] if events is not None else None
            grades = grades[grades["patient_id"].astype(str).isin(keep)] if grades is not None else None
        return labs, patients, events, grades, dict(c.provenance or {})
    import pyarrow as pa
    import pyarrow.dataset as ds

    from cohorts.canonical_folder import require_tables
    from cohorts.schema import (
        canonical_events,
        canonical_grades,
        canonical_labs,
        canonical_patients,
    )

    folder = require_tables(cohort)

    def table(name: str):
        data = ds.dataset(folder / f"{name}.parquet", format="parquet")
        if ids is None:
            return data.to_table().to_pandas()
        pid = ds.field("patient_id")
        if not pa.types.is_string(data.schema.field("patient_id").type):
            pid = pid.cast(pa.string())
        return data.to_table(filter=pid.isin(ids)).to_pandas()

    try:
        patients = canonical_patients(table("patients"), file=str(folder / "patients.parquet"))
        labs = canonical_labs(table("labs"), file=str(folder / "labs.parquet"))
        events = (canonical_events(table("events"), file=str(folder / "events.parquet"))
                  if (folder / "events.parquet").exists() else None)
        grades = (canonical_grades(table("grades"), file=str(folder / "grades.parquet"))
                  if (folder / "grades.parquet").exists() else None)
    except (pa.ArrowException, OSError) as exc:
        raise CohortError(f"Cannot read the cohort at {folder}: {str(exc).splitlines()[0]}") from exc
    prov_path = folder / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    return labs, patients, events, grades, prov if isinstance(prov, dict) else {}


def _model(uri: str):
    """A trained model folder (booster.ubj + feature state) or a registry/MLflow URI."""
    from scoring.batch import LoadedModel, check_schema, load_model

    folder = Path(uri)
    if folder.is_dir() and (folder / "booster.ubj").exists():
        from models.bundle import ModelBundle

        bundle = ModelBundle.load(folder)
        check_schema(bundle)
        return LoadedModel(bundle, "", "", "", str(folder))
    return load_model(uri)


# ----------------------------------------------------------------------------- scoring one patient

def with_availability(labs, features):
    """`labs` plus `available_hours` (when the model counts each result as available: its result time,
    else draw + the analyte's assumed turnaround) and `availability_assumed` (no result time given)."""
    import numpy as np

    from features.kinetics import availability_hours

    turnaround = dict(features.spec().turnaround_hours)
    res = labs["resulted_hours"].to_numpy("float64") if "resulted_hours" in labs else np.full(len(labs), np.nan)
    avail = availability_hours(labs, turnaround)
    return labs.assign(available_hours=avail,
                       availability_assumed=np.isnan(res) & (avail > labs["hours_since_infusion"].to_numpy("float64")))


def availability_times(labs, codes) -> list[float]:
    """Each distinct time (hours) at which a result of an analyte in `codes` became available
    (`labs` from :func:`with_availability`)."""
    import numpy as np

    avail = labs.loc[labs["analyte"].isin(list(codes)), "available_hours"].to_numpy("float64")
    return sorted({float(x) for x in avail[np.isfinite(avail)]})


def patient_data(model, labs, patient, events, *, synthetic: bool | None, generated_at: str,
                 tolerance_hours: float | None = None, grades=None):
    """Score one patient (landmarks with drivers and their percentage points; the risk curve) into
    the :class:`reports.patient.PatientData` the page is drawn from."""
    import numpy as np

    from cohorts.registry import analyte_registry
    from models.drivers import percentage_points
    from models.predict import (
        OUTCOME_COLUMNS,
        band_edges_of,
        landmark_tolerance,
        predict_cohort,
        trained_range,
    )
    from reports.patient import ModelInfo, PatientData

    bundle = model.bundle
    kf = bundle.features
    landmarks = [float(x) for x in bundle.meta.get("landmarks_hours") or [24.0, 48.0, 72.0, 96.0]]
    tol = landmark_tolerance(tolerance_hours)
    lo, hi = trained_range(bundle, tol) or (min(landmarks) - tol, max(landmarks) + tol)
    at_landmarks = predict_cohort(bundle, labs, patient, landmarks, events=events, grades=grades, reasons="all")
    # percentage points of each driver: the row's margin from the model's own features
    serving = patient.drop(columns=[c for c in OUTCOME_COLUMNS if c in patient])
    matrix = kf.build(labs, serving, landmarks, events=events, grades=grades)  # the rows predict_cohort scored, in order
    scored = (at_landmarks["status"] == "scored").to_numpy()
    margin = np.full(len(at_landmarks), np.nan)
    if scored.any():
        margin[scored] = bundle.margin(kf.transform(matrix[scored]))
    for i in (1, 2, 3):
        c = at_landmarks[f"driver_{i}_contribution"].to_numpy("float64")
        at_landmarks[f"driver_{i}_points"] = np.where(np.isfinite(c) & np.isfinite(margin),
                                                      percentage_points(np.nan_to_num(margin), np.nan_to_num(c),
                                                                        bundle.calibration), np.nan)
    labs = with_availability(labs, kf)
    times = [t for t in availability_times(labs, [*kf.analytes, *kf.covariate_analytes]) if lo <= t <= hi]
    curve = (predict_cohort(bundle, labs, patient, sorted(set(times)), events=events, grades=grades,
                            reasons="none")
             if times else at_landmarks.iloc[:0])
    codes = sorted(set(labs["analyte"].astype(str)))
    registry = analyte_registry()
    info = ModelInfo(model.name, model.version, model.alias, model.uri, tuple(landmarks),
                     float(kf.horizon_hours), tuple(band_edges_of(bundle)), tol)
    row = patient.iloc[0].to_dict()
    return PatientData(patient_id=str(row["patient_id"]), patient=row, labs=labs.reset_index(drop=True),
                       events=events.reset_index(drop=True) if events is not None else None,
                       landmarks=at_landmarks, curve=curve, analytes=registry.loc[[c for c in codes
                                                                                    if c in registry.index]],
                       baseline_relative=tuple(kf.analytes),
                       baseline_window_hours=tuple(float(x) for x in kf.baseline_window_hours),
                       model=info, synthetic=synthetic, generated_at=generated_at)


# ----------------------------------------------------------------------------- the verb

def file_name(patient_id: str) -> str:
    """A patient id as a safe file name ('P/01 a' → 'P_01_a.html')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(patient_id)).strip("._") + ".html"


def report(cohort: Path, model_uri: str, out: Path, *, patient_id: str | None = None, every: bool = False,
           fmt: str | None = None, progress: bool | None = None) -> list[Path]:
    """Write the report(s); returns the files written. Unknown patient: CohortError (exit 2)."""
    from datetime import UTC, datetime

    from cohorts.errors import CohortError
    from crs_settings.progress import Progress
    from reports.patient import render_patient_report

    out = Path(out)
    if not every and out.suffix.lower() not in (".html", ".htm"):
        raise CohortError(f"--out must be a FILE.html for one patient; got {out.name!r}")
    if not Path(cohort).exists():
        raise CohortError(f"The cohort {cohort} does not exist", file=str(cohort))
    labs, patients, events, grades, prov = _read(Path(cohort), fmt, None if every else [str(patient_id)])
    patients = patients.assign(patient_id=patients["patient_id"].astype(str))
    if not every and not len(patients):
        raise CohortError(f"Patient {patient_id!r} is not in the cohort at {cohort}; check the id "
                          "(patients.parquet, column patient_id)")
    model = _model(model_uri)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    synthetic = prov.get("synthetic") if isinstance(prov.get("synthetic"), bool) else None
    labs = labs.assign(patient_id=labs["patient_id"].astype(str))
    if events is not None:
        events = events.assign(patient_id=events["patient_id"].astype(str))
    lab_groups = dict(tuple(labs.groupby("patient_id", sort=False)))
    event_groups = dict(tuple(events.groupby("patient_id", sort=False))) if events is not None else {}
    if grades is not None:
        grades = grades.assign(patient_id=grades["patient_id"].astype(str))
    grade_groups = dict(tuple(grades.groupby("patient_id", sort=False))) if grades is not None else {}
    written: list[Path] = []
    if every:
        out.mkdir(parents=True, exist_ok=True)
    bar = Progress(len(patients), unit="patients", desc="crs report", enabled=progress) if every else None
    index_rows = []
    try:
        for _, row in patients.iterrows():
            pid = row["patient_id"]
            one = patients[patients["patient_id"] == pid]
            p_labs = lab_groups.get(pid, labs.iloc[:0])
            p_events = event_groups.get(pid, events.iloc[:0]) if events is not None else None
            p_grades = grade_groups.get(pid, grades.iloc[:0]) if grades is not None else None
            data = patient_data(model, p_labs, one, p_events, synthetic=synthetic, generated_at=stamp,
                                grades=p_grades)
            page = render_patient_report(data)
            target = out / file_name(pid) if every else out
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.partial")
            tmp.write_text(page, encoding="utf-8")
            tmp.replace(target)
            written.append(target)
            index_rows.append((pid, target.name, data.landmarks))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if every:
        (out / "index.html").write_text(_index(index_rows, stamp, synthetic), encoding="utf-8")
    return written


def _index(rows, stamp: str, synthetic: bool | None) -> str:
    """A table of every patient's latest predicted risk, linking to each report."""
    import html

    from reports.patient import DISCLAIMER, STATUS_WORDS, when

    lines = []
    for pid, name, lm in rows:
        scored = lm[lm["status"] == "scored"].sort_values("landmark_hours")
        if len(scored):
            last = scored.iloc[-1]
            risk = f"{100 * last['probability']:.0f}% ({last['risk_band']}) at {when(last['landmark_hours'])}"
        else:
            risk = "; ".join(sorted({STATUS_WORDS.get(s, s) for s in lm["status"]}))
        lines.append(f'<tr><td><a href="{html.escape(name)}">{html.escape(pid)}</a></td><td>{html.escape(risk)}'
                     "</td></tr>")
    tag = " (SYNTHETIC DATA)" if synthetic else ""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Severe CRS risk reports</title>"
            "<style>body{font-family:sans-serif;margin:24px;color:#263238}td,th{padding:4px 10px;text-align:left}"
            "tr:nth-child(even){background:#f5f7f8}</style></head><body>"
            f"<h1>Severe CRS risk reports{tag}</h1><p><b>{html.escape(DISCLAIMER)}</b></p><p>Made {stamp}.</p>"
            "<table><tr><th>Patient</th><th>Latest predicted risk</th></tr>" + "".join(lines) +
            "</table></body></html>\n")


def run(args: argparse.Namespace) -> int:
    written = report(args.cohort, args.model, args.out, patient_id=args.patient, every=args.all, fmt=args.format)
    if args.all:
        print(f"{len(written)} patient reports -> {args.out}/ (index.html lists them)")
    else:
        print(f"report for patient {args.patient} -> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["report", *(sys.argv[1:] if argv is None else argv)], only="report")


if __name__ == "__main__":
    raise SystemExit(main())
