"""Streaming batch scoring: a cohort in, one row per patient × landmark out, in bounded memory.

The model is loaded once from its URI (alias resolved to a version at the start, recorded in
every row). Patients are scored in chunks with :func:`models.predict.predict_cohort` (the very
code the registered pyfunc runs) and written to a unique temporary file that is renamed to the
final name only when every chunk is written and the counts reconcile: an interrupted, failed or
killed (kill -9) run never leaves a partial file under the final name, and never leaves rows that
a later run could pick up (cohorts.atomic). CSV cells that a spreadsheet would run as formulas
are escaped (OWASP CSV injection; see `escape_formulas`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cohorts.errors import CohortError
from models.predict import STATUSES, output_columns, predict_cohort

MODEL_COLUMNS = ["model_name", "model_version", "model_alias", "scored_at"]
DEFAULT_CHUNK_PATIENTS = 10_000


class ScoringError(CohortError):
    """A problem with what the user asked to score (model URI, cohort, output name): exit code 2."""


@dataclass
class LoadedModel:
    bundle: Any  # models.bundle.ModelBundle
    name: str = ""
    version: str = ""
    alias: str = ""
    uri: str = ""


@dataclass
class CohortSource:
    """Patients in chunks of (labs, patients, events, grades) plus what ingest said about them."""

    n_patients: int
    chunks: Callable[[int], Iterator[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]]]
    invalid_patients: set[str] = field(default_factory=set)
    quarantine: pd.DataFrame | None = None
    validation: dict[str, Any] | None = None


# ----------------------------------------------------------------------------- model

def output_schema():
    import pyarrow as pa

    cols = [*output_columns(), *MODEL_COLUMNS]
    return pa.schema([(c, pa.float64() if c in ("landmark_hours", "probability") or c.endswith("_contribution")
                       else pa.string()) for c in cols])


def check_schema(bundle) -> None:
    """The booster and the shipped feature state must describe the same inputs, in the same order."""
    names = [str(x) for x in bundle.features.get_feature_names_out()]
    booster_names = bundle.booster.feature_names
    n = bundle.booster.num_features()
    if n != len(names) or (booster_names and list(booster_names) != names):
        first = next((f"{a!r} vs {b!r}" for a, b in zip(booster_names or [], names, strict=False) if a != b), "")
        raise ScoringError(f"Model/feature-schema mismatch: the booster expects {n} features, the model's feature "
                           f"state makes {len(names)}{' (first difference: ' + first + ')' if first else ''}. "
                           "The model files are inconsistent; register the model again.")


def load_model(uri: str) -> LoadedModel:
    """Load the pyfunc once. `models:/name@alias` is resolved to its version first, so every row
    records the exact version scored even if the alias moves during the run. Registry problems are
    one line each, telling an unreachable store from an unknown model, version or alias, and from
    a version whose files are missing."""
    import mlflow

    from crs_settings import tracking_uri
    from models.registry import Registry, RegistryError, configure_http, first_line

    name, version, alias, load_uri = "", "", "", uri
    try:
        if m := re.fullmatch(r"models:/([^/@]+)@([^/]+)", uri):
            name, alias = m.group(1), m.group(2)
        elif m := re.fullmatch(r"models:/([^/@]+)/(\d+)", uri):
            name, version = m.group(1), m.group(2)
        if name:  # a registry URI needs a store; a local model folder does not
            registry = Registry.open(name, must_exist=True)
            version = version or registry.require_alias(alias)
            registry.version(version)
            registry.require_artifacts(version)
            load_uri = f"models:/{name}/{version}"
        else:
            configure_http()
            if tracking_uri():
                mlflow.set_tracking_uri(tracking_uri())
    except RegistryError as exc:
        raise ScoringError(f"Cannot load model {uri!r}: {exc}") from exc
    try:
        model = mlflow.pyfunc.load_model(load_uri)
        bundle = model.unwrap_python_model().bundle
    except Exception as exc:  # MLflow raises many types for an unreadable model folder
        raise ScoringError(f"Cannot load model {uri!r}: {first_line(exc)}. Check the name and alias "
                           "(`crs models list`) and MLFLOW_TRACKING_URI.") from exc
    check_schema(bundle)
    return LoadedModel(bundle, name, version, alias, uri)


# ----------------------------------------------------------------------------- cohorts

def _read_error(path: Path, exc: Exception) -> ScoringError:
    return ScoringError(f"Cannot read the cohort at {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                        file=str(path))


def canonical_source(folder: Path, codes: list[str]) -> CohortSource:
    """A canonical folder (labs/patients[/events][/grades].parquet), read one patient chunk at a time
    as (labs, patients, events, grades); events / grades are None where the folder has no such file.

    A `quarantine.parquet` beside the tables (what `crs ingest` writes) marks patients whose
    every lab row was quarantined as `invalid_input`.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    from cohorts.canonical_folder import open_parquet, read_table, require_tables
    from features.chunks import iter_cohort_chunks

    folder = require_tables(folder, ScoringError)
    try:
        n = int(open_parquet(folder / "patients.parquet").metadata.num_rows)
        invalid: set[str] = set()
        qpath = folder / "quarantine.parquet"
        if qpath.exists():
            quarantined = set(read_table(qpath, columns=["patient_id"])["patient_id"].dropna().astype(str))
            quarantined.discard("")
            if quarantined:
                seen = ds.dataset(folder / "labs.parquet").to_table(
                    columns=["patient_id"], filter=ds.field("patient_id").isin(sorted(quarantined)))
                known = ds.dataset(folder / "patients.parquet").to_table(
                    columns=["patient_id"], filter=ds.field("patient_id").isin(sorted(quarantined)))
                # an input patient (in patients.parquet) every one of whose lab rows was quarantined;
                # a quarantined row of a person the cohort does not list names no input patient
                invalid = ((quarantined & {str(x) for x in known.column("patient_id").to_pylist()})
                           - {str(x) for x in seen.column("patient_id").to_pylist()})
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        raise _read_error(folder, exc) from exc

    def chunks(size: int):
        it = iter_cohort_chunks(folder, size, codes, validate=True, with_grades=True)
        while True:
            try:
                part = next(it)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise _read_error(folder, exc) from exc
            yield part

    return CohortSource(n, chunks, invalid)


def ingest_source(fmt: str, path: Path, scratch: Path, codes: list[str]) -> CohortSource:
    """Any supported format, streamed by the ingest readers into the folder `scratch` (bounded memory;
    invalid rows go to its quarantine), then read one patient chunk at a time like a canonical folder."""
    from cohorts.ingest.api import ingest_to_folder

    try:
        ingest_to_folder(fmt, path, scratch)
    except CohortError:
        raise
    except Exception as exc:  # a reader failing on an unreadable file is the user's input problem
        raise _read_error(Path(path), exc) from exc
    source = canonical_source(scratch, codes)
    source.quarantine = pd.read_parquet(scratch / "quarantine.parquet")
    source.validation = json.loads((scratch / "validation.json").read_text())
    return source


def prefetched(chunks: Iterator, ahead: bool = True) -> Iterator:
    """Read the next chunk in a background thread while this one is scored (Parquet decoding
    releases the GIL): reading and scoring overlap on a 2-core machine. Holds two chunks at most."""
    if not ahead:
        yield from chunks
        return
    from concurrent.futures import ThreadPoolExecutor

    done = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crs-read") as pool:
        pending = pool.submit(next, chunks, done)
        while True:
            part = pending.result()
            if part is done:
                return
            pending = pool.submit(next, chunks, done)
            yield part


# ----------------------------------------------------------------------------- output

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP CSV injection: a spreadsheet may run these


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula (starting with = + - @ tab or CR) get a
    leading apostrophe, which spreadsheets show as text (OWASP "CSV injection"). Numbers are
    left alone (a negative contribution stays a number). For CSV output only: Parquet is typed."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
            text = values.astype("str")
            risky = text.str.startswith(FORMULA_STARTS).fillna(False).to_numpy(dtype=bool) & values.notna().to_numpy()
            if risky.any():
                out[col] = values.mask(risky, "'" + text)
    return out


class _Output:
    """Write chunks to a unique temporary file beside `out` (never reused, never appended to by
    another run); `commit` syncs it and renames it over `out`, `discard` removes it. A killed run
    leaves only its temporary, which the next run removes (cohorts.atomic)."""

    def __init__(self, out: Path) -> None:
        from cohorts.atomic import AtomicFile

        self.out = out
        self.kind = {".csv": "csv", ".parquet": "parquet"}.get(out.suffix.lower())
        if self.kind is None:
            raise ScoringError(f"--out must end in .csv or .parquet; got {out.name!r}")
        self.schema = output_schema()
        self._file = AtomicFile(out)
        self.tmp = self._file.tmp
        self._writer = None  # Parquet writer, or the CSV text stream
        self._rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.kind == "parquet":
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.tmp, self.schema)
            self._writer.write_table(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))
        else:
            header = self._writer is None
            if header:
                self._writer = open(self.tmp, "w", newline="", encoding="utf-8")  # closed by commit/discard
            # RFC 4180 line ends: a cell holding a carriage return is quoted, never split into two rows
            escape_formulas(frame).to_csv(self._writer, header=header, index=False, lineterminator="\r\n")
        self._rows += len(frame)

    def commit(self) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:  # no rows: still a valid file with the columns
            if self.kind == "parquet":
                pq.write_table(self.schema.empty_table(), self.tmp)
            else:
                pd.DataFrame(columns=self.schema.names).to_csv(self.tmp, index=False, lineterminator="\r\n")
        else:
            self._writer.close()
            self._writer = None
        self._file.commit()

    def discard(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # closing a half-written file may fail too; it is removed either way
                pass
            self._writer = None
        self._file.discard()


def side_file(out: Path, what: str) -> Path:
    """`scores.parquet` → `scores.quarantine.parquet` (beside the output)."""
    return out.with_name(f"{out.stem}.{what}")


# ----------------------------------------------------------------------------- the run

def trained_range_warnings(model: LoadedModel, landmarks: list[float] | None, counts: pd.Series,
                           tolerance_hours: float | None) -> list[str]:
    """One line per problem with the prediction times: patients whose latest time lies outside the
    trained landmarks (`--as-of latest`), or asked landmarks outside them (scored all the same)."""
    from models.predict import landmark_tolerance, trained_range

    span = trained_range(model.bundle, tolerance_hours)
    if span is None:
        return []
    trained = ", ".join(f"{float(x):g}" for x in model.bundle.meta["landmarks_hours"])
    where = f"the landmarks the model was trained on ({trained} h, ±{landmark_tolerance(tolerance_hours):g} h)"
    lines = []
    outside = int(counts.get("outside_trained_landmarks", 0))
    if outside:
        lines.append(f"{outside:,} patient{'s' if outside != 1 else ''} at a time outside {where}: status "
                     "outside_trained_landmarks, no probability")
    asked = [x for x in landmarks or [] if not span[0] <= x <= span[1]]
    if asked:
        lines.append(f"landmark{'s' if len(asked) > 1 else ''} {', '.join(f'{x:g}' for x in asked)} h "
                     f"outside {where}: scored as asked, but the model never saw such a time")
    return lines


def score_source(source: CohortSource, model: LoadedModel, out: Path, *, landmarks: list[float] | None = None,
                 as_of_latest: bool = False, reasons: str | None = None,
                 chunk_patients: int = DEFAULT_CHUNK_PATIENTS, progress: bool | None = None,
                 log=None, prefetch: bool = True, landmark_tolerance_hours: float | None = None) -> dict[str, Any]:
    """Score every patient of `source` and write `out` atomically. Returns the run summary
    (with `warnings`: one line each, e.g. patients outside the trained landmarks)."""
    from crs_settings.progress import Progress
    from models.drivers import parse_reasons
    from models.predict import band_edges_of

    t0 = time.perf_counter()
    out = Path(out)
    if as_of_latest == bool(landmarks):
        raise ScoringError("Give either --landmarks (e.g. 24,48) or --as-of latest")
    if int(chunk_patients) < 1:
        raise ScoringError(f"--chunk-patients must be >= 1; got {chunk_patients}")
    landmarks = sorted({float(x) for x in landmarks}) if landmarks else None
    parse_reasons(reasons, band_edges_of(model.bundle)[0])  # a bad policy fails before any work
    per_patient = 1 if as_of_latest else len(landmarks)
    scored_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stamp = {"model_name": model.name, "model_version": model.version, "model_alias": model.alias,
             "scored_at": scored_at}
    invalid = source.invalid_patients or None
    writer = _Output(out)
    bar = Progress(source.n_patients, unit="patients", desc="crs score", enabled=progress, stream=log)
    counts = pd.Series(0, index=STATUSES, dtype="int64")
    patients_read = rows = lab_rows = 0
    try:
        for labs, patients, events, grades in prefetched(source.chunks(int(chunk_patients)), prefetch):
            result = predict_cohort(model.bundle, labs, patients, landmarks, events=events, grades=grades,
                                    reasons=reasons,
                                    as_of_latest=as_of_latest, invalid_patients=invalid,
                                    landmark_tolerance_hours=landmark_tolerance_hours)
            if len(result) != len(patients) * per_patient:
                raise RuntimeError(f"internal: {len(patients)} patients gave {len(result)} rows, "
                                   f"expected {len(patients) * per_patient}")
            writer.write(result.assign(**stamp))
            counts = counts.add(result["status"].value_counts(), fill_value=0).astype("int64")
            patients_read += len(patients)
            rows += len(result)
            lab_rows += len(labs)
            bar.update(len(patients))
        if patients_read != source.n_patients or rows != patients_read * per_patient:
            raise RuntimeError(f"internal: read {patients_read} of {source.n_patients} patients, wrote {rows} rows")
        side = _write_side_files(source, out)  # each atomic; the output itself is renamed last
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    summary = {"patients_read": patients_read, "rows_written": rows, "lab_rows_read": lab_rows,
               "rows_scored": int(counts.get("scored", 0)),
               "by_status": {k: int(v) for k, v in counts.items() if v},
               "landmarks": "latest" if as_of_latest else landmarks, "seconds": round(seconds, 2),
               "patients_per_s": round(patients_read / seconds) if seconds > 0 else None,
               "model": {"uri": model.uri, "name": model.name, "version": model.version, "alias": model.alias},
               "scored_at": scored_at, "out": str(out),
               "warnings": trained_range_warnings(model, landmarks, counts, landmark_tolerance_hours)}
    if side:
        summary["quarantine"] = {"path": str(side[0]), "rows": len(source.quarantine),
                                 "patients_invalid_input": len(source.invalid_patients)}
    return summary


def _write_side_files(source: CohortSource, out: Path) -> list[Path]:
    """What ingest said about the input (quarantine, validation report) beside the output, each written
    atomically. Returns the paths written (quarantine first)."""
    from cohorts.atomic import atomic_file, write_text

    if source.quarantine is None:
        return []
    written = [side_file(out, "quarantine.parquet")]
    with atomic_file(written[0]) as tmp:
        source.quarantine.to_parquet(tmp, index=False)
    if source.validation is not None:
        written.append(side_file(out, "validation.json"))
        write_text(written[1], json.dumps(source.validation, indent=2, sort_keys=True, default=str) + "\n")
    return written


def score_cohort(cohort: Path, model_uri: str, out: Path, *, fmt: str | None = None,
                 landmarks: list[float] | None = None, as_of_latest: bool = False, reasons: str | None = None,
                 chunk_patients: int = DEFAULT_CHUNK_PATIENTS, progress: bool | None = None,
                 model: LoadedModel | None = None, landmark_tolerance_hours: float | None = None) -> dict[str, Any]:
    """`crs score`: load the model once, open the cohort (canonical folder or `fmt`), stream, write."""
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise ScoringError(f"--out must end in .csv or .parquet; got {out.name!r}")
    if not Path(cohort).exists():  # fail fast, before the seconds spent loading the model
        raise ScoringError(f"The cohort {cohort} does not exist", file=str(cohort))
    model = model or load_model(model_uri)
    if not as_of_latest and not landmarks:  # default: the landmarks the model was trained on
        landmarks = [float(x) for x in model.bundle.meta["landmarks_hours"]]
    kf = model.bundle.features
    codes = [*kf.analytes, *kf.covariate_analytes]
    run = dict(landmarks=landmarks, as_of_latest=as_of_latest, reasons=reasons, chunk_patients=chunk_patients,
               progress=progress, landmark_tolerance_hours=landmark_tolerance_hours)
    if fmt is None:
        return score_source(canonical_source(Path(cohort), codes), model, out, **run)
    from cohorts.atomic import scratch_folder

    with scratch_folder(out) as scratch:  # the ingested tables, beside the output, removed at the end
        return score_source(ingest_source(fmt, Path(cohort), scratch, codes), model, out, **run)


def format_summary(summary: dict[str, Any]) -> str:
    m = summary["model"]
    model = f"{m['name']} v{m['version']}" + (f" (@{m['alias']})" if m["alias"] else "") if m["name"] else m["uri"]
    by = ", ".join(f"{k} {v:,}" for k, v in summary["by_status"].items()) or "none"
    text = (f"{summary['patients_read']:,} patients read, {summary['rows_written']:,} rows written "
            f"({summary['rows_scored']:,} scored; by status: {by}) with {model} in {summary['seconds']:.1f}s "
            f"({summary['patients_per_s'] or 0:,} patients/s) -> {summary['out']}")
    if "quarantine" in summary:
        q = summary["quarantine"]
        text += (f"\n{q['rows']:,} input lab rows quarantined ({q['patients_invalid_input']:,} patients with no "
                 f"usable row: invalid_input) -> {q['path']}")
    return text
