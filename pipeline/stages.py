"""DVC stage entry points: read params, call the libraries, write files under data/. No science."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipeline.params import load_params, parse_landmarks
from pipeline.paths import project_root


def _features_from_params(p: dict[str, Any]):
    from features.transformer import KineticFeatures

    f = p["featurize"]
    d = KineticFeatures()  # keys absent from params.yaml keep the transformer's defaults
    return KineticFeatures(analytes=tuple(f["analytes"]),
                           baseline_window_hours=tuple(float(x) for x in f["baseline_window_hours"]),
                           horizon_hours=float(f["horizon_hours"]),
                           categorical=tuple(f["categorical_covariates"]),
                           numeric_covariates=tuple(f["numeric_covariates"]),
                           trailing_window_hours=float(f.get("trailing_window_hours", d.trailing_window_hours)),
                           rise_fold=float(f.get("rise_fold", d.rise_fold)),
                           cross_analyte_pairs=tuple(tuple(x) for x in f.get("cross_analyte_pairs",
                                                                              d.cross_analyte_pairs)),
                           covariate_analytes=tuple(f.get("covariate_analytes", d.covariate_analytes)),
                           event_types=tuple(f.get("event_types", d.event_types)),
                           chunk_patients=int(f.get("chunk_patients", d.chunk_patients)))


def simulate(patients: int, seed: int, out: Path, chunk_size: int | None = None) -> dict[str, int]:
    from cohorts.simulate import write_simulated_cohort

    p = load_params() if (project_root() / "params.yaml").exists() else {}
    sim = p.get("simulate", {})
    mix = sim.get("therapy_mix") or {"axi-cel": 1.0}
    return write_simulated_cohort(out, patients, seed, mix, chunk_size or int(sim.get("chunk_size", 20_000)),
                                  site_mix=sim.get("site_mix"))


def describe(cohort_dir: Path, out_dir: Path) -> pd.DataFrame:
    """Kinetics-by-grade plot and the comparison with published reference numbers."""
    from cohorts.describe import (
        cohort_statistics,
        compare_with_targets,
        load_targets,
        plot_kinetics_by_grade,
    )
    from cohorts.io import read_cohort

    cohort = read_cohort(cohort_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    label = "SYNTHETIC cohort (simulator)" if cohort.provenance.get("synthetic") else f"cohort {cohort_dir.name}"
    plot_kinetics_by_grade(cohort.labs, cohort.patients, str(out_dir / "kinetics_by_grade.png"),
                           f"{label}: median and IQR per day, by maximum CRS grade")
    table = compare_with_targets(cohort_statistics(cohort.labs, cohort.patients, load_targets()))
    table.to_csv(out_dir / "reference_comparison.csv", index=False)
    return table


def ingest(fmt: str | None, input_path: Path | None, out: Path, chunk_rows: int | None = None) -> dict[str, Any]:
    """`crs ingest`: with --format and --input read those; with neither, the DVC stage reads params `ingest`."""
    from cohorts.errors import CohortError
    from cohorts.ingest import ingest as run_ingest
    from cohorts.ingest import write_ingested
    from cohorts.ingest.harmonise import DEFAULT_WINDOW_HOURS
    from cohorts.ingest.source import CHUNK_ROWS

    p = load_params() if (project_root() / "params.yaml").exists() else {}
    section = p.get("ingest", {})
    if (fmt is None) != (input_path is None):
        raise CohortError("Give both --format and --input (or neither, to read the `ingest` section of params.yaml)")
    if fmt is None:
        source = str(section.get("source", "simulated"))
        if source == "simulated":
            fmt, input_path = "long", project_root() / p["paths"]["simulated"]
        elif source == "path":
            fmt, input_path = str(section.get("format", "long")), Path(str(section.get("path", "")))
            if not input_path.is_absolute():
                input_path = project_root() / input_path
        else:
            raise CohortError(f"params.yaml ingest.source must be 'simulated' or 'path'; got {source!r}")
    window = tuple(float(x) for x in section.get("time_window_hours", DEFAULT_WINDOW_HOURS))
    result = run_ingest(fmt, input_path, window, chunk_rows or CHUNK_ROWS)
    root = project_root()
    for key in ("input",):  # keep outputs free of machine-specific absolute paths inside the project
        result.validation[key] = _relative(result.validation[key], root)
        result.cohort.provenance["ingest"][key] = result.validation[key]
    result.validation["lab_file"] = _relative(result.validation["lab_file"], root)
    for key in ("patients_file", "path"):
        if key in result.cohort.provenance:
            result.cohort.provenance[key] = _relative(result.cohort.provenance[key], root)
    write_ingested(result, out)
    return result.validation


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def featurize(cohort_dir: Path, landmarks: list[float], out: Path) -> dict[str, int]:
    """Landmark matrix of a canonical cohort folder, streamed in patient chunks (memory bounded
    whatever the cohort size; output identical to the in-memory build)."""
    from cohorts.errors import CohortError
    from features.chunks import featurize_folder

    cohort_dir = Path(cohort_dir)
    if not cohort_dir.is_dir():
        raise CohortError(f"Cohort folder {cohort_dir} does not exist or is not a folder")
    for name in ("labs", "patients"):
        if not (cohort_dir / f"{name}.parquet").exists():
            raise CohortError(f"Cohort folder {cohort_dir} has no {name}.parquet (expected the canonical "
                              "tables written by `crs simulate` or `crs ingest`)", file=str(cohort_dir))
    p = load_params()
    features = _features_from_params(p)
    # no events.parquet = treatments not recorded: features say "unknown" (NaN), not "not given"
    return featurize_folder(cohort_dir, out, features, landmarks,
                            chunk_patients=int(p["featurize"].get("read_chunk_patients", 200_000)))


def train(features_path: Path | None = None, out_dir: Path | None = None) -> dict[str, Any]:
    from models.crossval import TrainConfig
    from models.train import train_model

    root = project_root()
    p = load_params()
    features_path = features_path or root / p["paths"]["features"]
    out_dir = out_dir or root / p["paths"]["model"]
    matrix = pd.read_parquet(features_path)
    if p["train"].get("negative_control"):
        # a deliberately useless model (labels permuted): the promotion gate must refuse it
        import numpy as np

        rng = np.random.default_rng(int(p["train"]["seed"]))
        matrix = matrix.assign(label=rng.permutation(matrix["label"].to_numpy()))
    bundle, oof = train_model(matrix, _features_from_params(p), TrainConfig.from_params(p["train"]))
    bundle.meta["risk_band_edges"] = list(p["score"]["risk_band_edges"])
    bundle.meta["landmarks_hours"] = parse_landmarks(p["featurize"]["landmarks_hours"])
    bundle.save(out_dir)
    oof_path = root / p["paths"]["oof"]
    oof_path.parent.mkdir(parents=True, exist_ok=True)
    oof.to_parquet(oof_path, index=False)
    return bundle.meta


def _write_curves(table: pd.DataFrame, metrics: dict[str, Any], folder: Path, label: str,
                  decision_thresholds: list[float]) -> None:
    """Plot data (CSV, for `dvc plots diff`) and PNGs: ROC, PR, calibration, decision curve."""
    import numpy as np

    from models.evaluate import curve_tables, decision_curve
    from models.plots import plot_calibration, plot_decision_curve, plot_roc_pr

    folder.mkdir(parents=True, exist_ok=True)
    curves = curve_tables(table)
    for name, frame in curves.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    lo, hi, step = decision_thresholds
    dc = decision_curve(table, np.round(np.arange(lo, hi + step / 2, step), 6))
    dc.to_csv(folder / "decision_curve.csv", index=False)
    plot_roc_pr(table, str(folder / "roc.png"), str(folder / "pr.png"), label)
    pooled = metrics["pooled"]
    plot_calibration(curves["calibration"], str(folder / "calibration.png"), label,
                     pooled.get("xgb_kinetics.calibration_slope", float("nan")),
                     pooled.get("xgb_kinetics.calibration_intercept", float("nan")))
    plot_decision_curve(dc, str(folder / "decision_curve.png"), label)


def evaluate() -> dict[str, Any]:
    from models.evaluate import evaluate_predictions
    from models.model_card import render_model_card

    root = project_root()
    p = load_params()
    e = p["evaluate"]
    oof = pd.read_parquet(root / p["paths"]["oof"])
    metrics = evaluate_predictions(oof, int(e["n_bootstrap"]), int(e["seed"]), int(e["subgroup_min_events"]))
    prov = _provenance(root, p)
    metrics["cohort"] = {"synthetic": bool(prov.get("synthetic", False)), "source": prov.get("source", "")}
    label = "SYNTHETIC cohort" if prov.get("synthetic") else "held-out patients"
    _write_curves(oof, metrics, root / p["paths"]["plots"], label, e["decision_thresholds"])
    (root / p["paths"]["metrics"]).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    meta = json.loads((root / p["paths"]["model"] / "meta.json").read_text())
    matrix = pd.read_parquet(root / p["paths"]["features"])
    features = json.loads((root / p["paths"]["model"] / "features.json").read_text())
    card = render_model_card(params=p, metrics=metrics, provenance=prov, matrix=matrix,
                             feature_names=features["feature_names"], train_meta=meta)
    (root / p["paths"]["model_card"]).write_text(card)
    return metrics


def evaluate_external(model_uri: str, cohort_path: Path, fmt: str | None, out_dir: Path,
                      landmarks: list[float] | None = None) -> dict[str, Any]:
    """`crs evaluate --model URI --cohort PATH`: the same metrics and plots on another cohort."""
    import mlflow

    from cohorts.io import read_cohort
    from models.evaluate import evaluate_predictions
    from models.external import external_predictions, load_bundle
    from pipeline.paths import tracking_uri

    p = load_params()
    e = p["evaluate"]
    if fmt is None:
        cohort = read_cohort(cohort_path)
    else:
        from cohorts.ingest import ingest as run_ingest

        cohort = run_ingest(fmt, cohort_path).cohort
    mlflow.set_tracking_uri(tracking_uri())
    bundle = load_bundle(model_uri)
    landmarks = landmarks or list(bundle.meta.get("landmarks_hours") or parse_landmarks(p["featurize"]["landmarks_hours"]))
    table = external_predictions(bundle, cohort, landmarks)
    metrics = evaluate_predictions(table, int(e["n_bootstrap"]), int(e["seed"]), int(e["subgroup_min_events"]))
    metrics["model_uri"] = model_uri
    metrics["cohort"] = {"path": str(cohort_path), "format": fmt or "canonical",
                         "synthetic": bool(cohort.provenance.get("synthetic", False))}
    label = f"external: {cohort_path.name}" + (" (SYNTHETIC)" if metrics["cohort"]["synthetic"] else "")
    _write_curves(table, metrics, out_dir, label, e["decision_thresholds"])
    table.to_parquet(out_dir / "predictions.parquet", index=False)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def explain() -> pd.DataFrame:
    """TreeSHAP of the final model: global (beeswarm, bar, mean |SHAP| table), dependence plots of the
    top features, waterfalls of three example rows labelled by letter (no patient identifiers)."""
    from models.bundle import ModelBundle
    from models.explain import (
        mean_abs_shap,
        plot_bar,
        plot_beeswarm,
        plot_dependence,
        plot_waterfalls,
        shap_values,
    )

    root = project_root()
    p = load_params()
    x = p["explain"]
    bundle = ModelBundle.load(root / p["paths"]["model"])
    matrix = pd.read_parquet(root / p["paths"]["features"])
    rows = matrix[matrix["eligible"]]
    n = min(len(rows), int(x["max_rows"]))
    rows = rows.sample(n=n, random_state=int(x["seed"])) if n < len(rows) else rows
    X = bundle.features.transform(rows).reset_index(drop=True)
    values, base = shap_values(bundle.booster, X)
    out = root / p["paths"]["explain"]
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    table = mean_abs_shap(values, list(X.columns))
    table.to_csv(out / "mean_abs_shap.csv", index=False)
    plot_beeswarm(values, X, str(out / "shap_beeswarm.png"), seed=int(x["seed"]))
    plot_bar(values, X, str(out / "shap_bar.png"))
    plot_dependence(values, X, table["feature"].head(int(x["dependence_top"])).tolist(), str(out))
    plot_waterfalls(values, X, base, str(out))
    return table


def _provenance(root: Path, p: dict[str, Any]) -> dict[str, Any]:
    path = root / p["paths"]["cohort"] / "provenance.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def lineage_tags(root: Path, p: dict[str, Any]) -> dict[str, str]:
    """Git commit, dirty flag, DVC hashes of the stage inputs (from dvc.lock) and cohort provenance."""
    tags = {"git_commit": _git(root, "rev-parse", "HEAD") or "unknown",
            "git_dirty": str(bool(_git(root, "status", "--porcelain"))).lower()}
    lock = root / "dvc.lock"
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in ("simulate", "ingest", "featurize", "train", "evaluate", "explain"):
            for out in stages.get(stage, {}).get("outs", []):
                tags[f"dvc.{stage}.{out['path']}"] = str(out.get("md5", ""))
    prov = _provenance(root, p)
    tags["cohort.synthetic"] = str(bool(prov.get("synthetic", False))).lower()
    for key in ("source", "simulator_version", "seed", "patients", "path"):
        if key in prov:
            tags[f"cohort.{key}"] = str(prov[key])
    return tags


def _input_example(cohort, pseudonymise: bool, n_patients: int = 2):
    """Input example for the logged model: real rows; patient ids replaced by EXAMPLE-1, ... unless
    the user opted in (`register.log_patient_ids: true`)."""
    from models.model_input import to_model_input

    first = cohort.patients["patient_id"].head(n_patients).tolist()
    pick = cohort.labs["patient_id"].isin(first)
    example = to_model_input(cohort.labs[pick], cohort.patients[cohort.patients["patient_id"].isin(first)],
                             cohort.events[cohort.events["patient_id"].isin(first)])
    if not pseudonymise:
        return example
    mapping = {pid: f"EXAMPLE-{i + 1}" for i, pid in enumerate(first)}
    return example.assign(patient_id=example["patient_id"].map(mapping))


def _sanitised_validation(root: Path, p: dict[str, Any]) -> Path | None:
    """validation.json without example rows (they can carry patient ids)."""
    src = root / p["paths"]["cohort"] / "validation.json"
    if not src.exists():
        return None

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k != "examples"}
        return value

    import tempfile

    dst = Path(tempfile.mkdtemp(prefix="crs-register-")) / "validation_report.json"
    dst.write_text(json.dumps(scrub(json.loads(src.read_text())), indent=2, sort_keys=True))
    return dst


def _champion_comparison(root: Path, p: dict[str, Any], cohort_tag: str):
    """Both AUROCs on the same validation data. If the champion was trained on this very cohort
    (same DVC hash), its own held-out AUROC is the fair number (scoring it here would be in-sample);
    otherwise the champion is scored on the challenger's held-out rows."""
    from cohorts.io import read_cohort
    from models.external import external_predictions, load_bundle
    from models.metrics import auroc

    def compare(client, champion) -> tuple[float, float, str]:
        oof = pd.read_parquet(root / p["paths"]["oof"])
        mine = auroc(oof["label"].to_numpy(), oof["probability"].to_numpy())
        run = client.get_run(champion.run_id)
        if run.data.tags.get(cohort_tag) and run.data.tags.get(cohort_tag) == lineage_tags(root, p).get(cohort_tag):
            theirs = run.data.metrics.get("pooled.xgb_kinetics.auroc", float("nan"))
            return theirs, mine, "champion compared by its own held-out AUROC on the same cohort (same DVC hash)"
        bundle = load_bundle(f"models:/{champion.name}/{champion.version}")
        cohort = read_cohort(root / p["paths"]["cohort"])
        scored = external_predictions(bundle, cohort, sorted(oof["landmark_hours"].unique().tolist()))
        both = oof.merge(scored[["patient_id", "landmark_hours", "probability"]], on=["patient_id", "landmark_hours"],
                         suffixes=("", "_champion"))
        y = both["label"].to_numpy()
        return (auroc(y, both["probability_champion"].to_numpy()), auroc(y, both["probability"].to_numpy()),
                "champion scored on the challenger's held-out rows (another cohort: optimistic for the champion "
                "if it was trained on some of these patients)")

    return compare


def register() -> dict[str, Any]:
    from cohorts.io import read_cohort
    from models.registry import flatten, log_and_register
    from pipeline.paths import reference_dir

    root = project_root()
    p = load_params()
    r = p["register"]
    metrics = json.loads((root / p["paths"]["metrics"]).read_text())
    flat = {k: v for k, v in flatten("", {k: v for k, v in metrics.items() if k not in ("cohort", "models")}, {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and v == v}
    cohort = read_cohort(root / p["paths"]["cohort"])
    example = _input_example(cohort, pseudonymise=not r.get("log_patient_ids"))
    tags = lineage_tags(root, p)
    oof = pd.read_parquet(root / p["paths"]["oof"])
    tags |= {"patients": str(oof["patient_id"].nunique()), "events": str(int(oof["label"].sum())),
             "prevalence": f"{oof['label'].mean():.4f}",
             "negative_control": str(bool(p["train"].get("negative_control", False))).lower()}
    artifacts = [root / p["paths"]["metrics"], root / p["paths"]["model_card"], root / p["paths"]["plots"],
                 root / p["paths"]["explain"]]
    validation = _sanitised_validation(root, p)
    if validation is not None:
        artifacts.append(validation)
    result = log_and_register(
        root=root, model_name=r["model_name"], experiment=r["experiment"], bundle_dir=root / p["paths"]["model"],
        params=p, metrics=flat, artifacts=artifacts, tags=tags, input_example=example, gates=r["gates"],
        reference_dir=reference_dir(root),
        compare_with_champion=_champion_comparison(root, p, f"dvc.ingest.{p['paths']['cohort']}"),
        challenger_alias=r["challenger_alias"], champion_alias=r["champion_alias"])
    out = root / p["paths"]["registration"]
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def score(cohort_dir: Path, model_uri: str, landmarks: list[float] | None, out: Path, *, fmt: str | None = None,
          as_of_latest: bool = False, reasons: str | None = None, chunk_patients: int | None = None,
          progress: bool | None = None) -> dict[str, Any]:
    """`crs score`: stream a cohort through a registered model; returns the run summary.

    Chunk size: `--chunk-patients`, else params `score.chunk_patients`, else 50,000 patients.
    """
    from models.scoring import DEFAULT_CHUNK_PATIENTS, score_cohort

    p = load_params() if (project_root() / "params.yaml").exists() else {}
    chunk = chunk_patients or int(p.get("score", {}).get("chunk_patients", DEFAULT_CHUNK_PATIENTS))
    return score_cohort(Path(cohort_dir), model_uri, Path(out), fmt=fmt, landmarks=landmarks,
                        as_of_latest=as_of_latest, reasons=reasons, chunk_patients=chunk, progress=progress)
