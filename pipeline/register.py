"""Stage `register`: one MLflow run (params, headline metrics, datasets, plots, SHAP, model card) and a
new version of the registered model, aliased `challenger`; `champion` only if it passes the gates
in params.yaml. The gate decision is made before anything is written (models/tracking.py)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # annotations only: the stage imports these where it uses them
    from collections.abc import Callable

    import pandas as pd

    from models.gates import ChampionComparison
    from models.training_patients import TrainingPatients

HELP = "log the run to MLflow and register the model behind the promotion gates (DVC stage)"
LINEAGE_STAGES = ("simulate", "ingest", "featurize", "train", "evaluate", "explain")
PROVENANCE_TAGS = ("source", "simulator_version", "seed", "patients")  # never a path


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Reads params.yaml `register` and the outputs of train, evaluate and explain; logs to "
                     "MLFLOW_TRACKING_URI (default: the project's sqlite:///<project>/mlflow.db; in a "
                     "`dvc exp run --temp/--queue` workspace, the store of the repository it came from).")


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def written_by_pipeline(path: str) -> bool:
    """Files `dvc repro` itself rewrites (stage outputs under data/, dvc.lock): not a dirty tree."""
    path = path.strip().strip('"')
    return path == "dvc.lock" or (path.startswith("data/") and not path.startswith("data/reference/"))


def git_dirty(root: Path) -> bool:
    """Uncommitted changes to code or configuration (what the pipeline writes does not count)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "-z", "--untracked-files=normal"], cwd=root,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    entries = out.split("\0")
    paths, i = [], 0
    while i < len(entries):
        entry = entries[i]
        if len(entry) > 3:
            paths.append(entry[3:])
            if entry[0] in "RC":  # a rename is followed by its source path
                i += 1
        i += 1
    return any(not written_by_pipeline(path) for path in paths)


def dvc_hashes(root: Path) -> dict[str, dict[str, str]]:
    """{stage: {output path: md5}} from dvc.lock."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {stage: {str(o["path"]): str(o.get("md5", "")) for o in stages.get(stage, {}).get("outs", [])}
            for stage in stages}


def dvc_experiment() -> dict[str, str]:
    """The DVC experiment this run belongs to (`dvc exp run` exports its name and baseline commit)."""
    out = {}
    if os.environ.get("DVC_EXP_NAME"):
        out["dvc.exp.name"] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        out["dvc.exp.baseline_rev"] = os.environ["DVC_EXP_BASELINE_REV"]
    return out


def lineage_tags(root: Path, p: dict[str, Any]) -> dict[str, str]:
    """Git commit, dirty flag, DVC hashes of the stage outputs, DVC experiment, cohort provenance
    (never a machine path)."""
    from pipeline.common import cohort_provenance

    tags = {"git_commit": _git(root, "rev-parse", "HEAD") or "unknown", "git_dirty": str(git_dirty(root)).lower()}
    hashes = dvc_hashes(root)
    for stage in LINEAGE_STAGES:
        for path, md5 in hashes.get(stage, {}).items():
            if "/plots/" not in f"/{path}":  # plot files follow from metrics: not lineage worth a tag
                tags[f"dvc.{stage}.{path}"] = md5
    tags |= dvc_experiment()
    prov = cohort_provenance(root, p)
    tags["cohort.synthetic"] = str(bool(prov.get("synthetic", False))).lower()
    for key in PROVENANCE_TAGS:
        if key in prov:
            tags[f"cohort.{key}"] = str(prov[key])
    if isinstance(prov.get("site_mix"), dict):
        tags["cohort.site_mix"] = json.dumps(prov["site_mix"], sort_keys=True)
    return tags


def sanitised_validation(root: Path, p: dict[str, Any]) -> Path | None:
    """validation.json without example rows (they can carry patient ids)."""
    from pipeline.common import path_of

    src = path_of(root, p, "cohort") / "validation.json"
    if not src.exists():
        return None

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k != "examples"}
        return value

    dst = Path(tempfile.mkdtemp(prefix="crs-register-")) / "validation_report.json"
    dst.write_text(json.dumps(scrub(json.loads(src.read_text())), indent=2, sort_keys=True))
    return dst


def champion_training_patients(registry, champion):
    """The champion's record of its training patients, or None if it has none (registered before
    the record existed). Any other failure to read it stops the registration."""
    import mlflow

    from models.registry import NotInRegistry
    from models.training_patients import FILE_NAME, TrainingPatients

    uri = f"models:/{champion.name}/{champion.version}/artifacts/{FILE_NAME}"
    try:
        path = registry.call(f"reading the training-patient record of version {champion.version}",
                             mlflow.artifacts.download_artifacts, artifact_uri=uri,
                             dst_path=tempfile.mkdtemp(prefix="crs-champion-"))
    except NotInRegistry:
        return None
    return TrainingPatients.read(Path(path))


def champion_comparison(root: Path, p: dict[str, Any], cohort_hash: str):
    """The I/O around :func:`models.gates.compare_with_champion`: the champion's record of its
    training patients, its own held-out AUROC (same cohort), or the champion model scored on the
    challenger's held-out rows of patients it never saw (another cohort)."""
    import pandas as pd

    from cohorts.errors import CohortError
    from cohorts.io import Cohort, read_cohort
    from models.external import external_predictions
    from models.gates import ChampionComparison, compare_with_champion
    from models.registry import RegistryError
    from pipeline.common import path_of
    from scoring.batch import load_model

    minimum = int(p["register"]["gates"]["min_comparison_events"])

    def compare(registry, champion) -> ChampionComparison:
        version = str(champion.version)
        oof = pd.read_parquet(path_of(root, p, "oof"))
        record = champion_training_patients(registry, champion)
        if record is not None and record.cohort_hash and record.cohort_hash == cohort_hash:
            own = champion.tags.get("metric.auroc")
            run = registry.call("reading the champion's run", registry.client.get_run, champion.run_id)
            own = run.data.metrics.get("pooled/auroc", run.data.metrics.get("pooled.xgb_kinetics.auroc", own))
            return compare_with_champion(oof, True, float(own) if own is not None else None,
                                         champion_version=version, min_event_patients=minimum)

        def score_unseen(unseen: pd.DataFrame) -> pd.DataFrame:
            bundle = load_model(f"models:/{champion.name}/{version}").bundle
            cohort = read_cohort(path_of(root, p, "cohort"))
            ids = set(unseen["patient_id"].astype(str))

            def pick(t):
                return t[t["patient_id"].astype(str).isin(ids)] if t is not None else None

            subset = Cohort(pick(cohort.labs), pick(cohort.patients), pick(cohort.events), cohort.provenance)
            return external_predictions(bundle, subset, sorted(oof["landmark_hours"].unique().tolist()))

        try:
            return compare_on_unseen_patients(oof, record, version, minimum, score_unseen)
        except (RegistryError, CohortError) as exc:
            return ChampionComparison(False, f"the champion could not score the unseen patients: {exc}",
                                      champion_version=version, min_event_patients=minimum)

    return compare


def compare_on_unseen_patients(rows: pd.DataFrame, record: TrainingPatients | None, version: str, minimum: int,
                               score_unseen: Callable[[pd.DataFrame], pd.DataFrame]) -> ChampionComparison:
    """The challenger's held-out `rows` against the champion on the patients its training-patient
    `record` says it never saw (no record: no comparison). `score_unseen(unseen_rows)` gives the
    champion's scores of those patients; it is called only when enough patients with an event remain."""
    from models.gates import compare_with_champion, enough_events, unseen_rows

    if record is None:
        return compare_with_champion(rows, False, champion_version=version, min_event_patients=minimum)
    saw = record.contains(rows["patient_id"])
    unseen = unseen_rows(rows, saw)
    scores = score_unseen(unseen) if enough_events(unseen, minimum) else None
    return compare_with_champion(rows, False, champion_scores=scores, champion_saw=saw,
                                 min_event_patients=minimum, champion_version=version)


def cohort_label(prov: dict[str, Any], n_patients: int) -> str:
    if prov.get("synthetic"):
        return f"simulated {n_patients} patients, seed {prov.get('seed', '?')}"
    return f"{prov.get('source', 'own')} cohort, {n_patients} patients"


def params_digest(p: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(p, sort_keys=True, default=str).encode()).hexdigest()[:8]


def register() -> dict[str, Any]:
    import pandas as pd

    from cohorts.io import read_cohort
    from crs_settings import reference_dir
    from models.model_input import synthetic_example
    from models.registry import Registry
    from models.tracking import (
        Registration,
        dataset,
        dvc_source,
        log_and_register,
        model_card_summary,
    )
    from models.training_patients import TrainingPatients
    from pipeline.common import cohort_provenance, path_of, stage_context

    root, p = stage_context("register")
    r = p["register"]
    Registry.open(r["model_name"], root, r)  # an unreachable store fails here, in seconds, before any work
    metrics = json.loads(path_of(root, p, "metrics_full").read_text())
    cohort = read_cohort(path_of(root, p, "cohort"))
    hashes = dvc_hashes(root)
    cohort_key, features_key, oof_key = (p["paths"][k] for k in ("cohort", "features", "oof"))
    cohort_hash = hashes.get("ingest", {}).get(cohort_key, "")
    record = TrainingPatients.build(cohort.patients["patient_id"], cohort_hash)
    example_settings = r["input_example"]
    example = synthetic_example(dict(example_settings["therapy_mix"]), int(example_settings["patients"]),
                                int(example_settings["seed"]))
    tags = lineage_tags(root, p)
    oof = pd.read_parquet(path_of(root, p, "oof"))
    tags |= {"patients": str(oof["patient_id"].nunique()), "events": str(int(oof["label"].sum())),
             "prevalence": f"{oof['label'].mean():.4f}",
             "negative_control": str(bool(p["train"]["negative_control"])).lower()}
    selection = metrics.get("selection") or {}
    if selection.get("final_family"):  # the candidate family that won (issue 14), per fold as well
        tags |= {"model.family": str(selection["final_family"]),
                 "model.family_per_outer_fold": ",".join(str(f) for f in selection.get("family_per_outer_fold") or [])}
    artifacts = [path_of(root, p, k) for k in ("metrics", "metrics_full", "model_card", "plots", "explain")]
    validation = sanitised_validation(root, p)
    if validation is not None:
        artifacts.append(validation)
    prov = cohort_provenance(root, p)
    label = cohort_label(prov, int(cohort.patients["patient_id"].nunique()))
    exp = dvc_experiment()
    run_name = f"{exp.get('dvc.exp.name', 'dvc repro')} · {label} · params {params_digest(p)}"
    card = path_of(root, p, "model_card")
    summary = model_card_summary(card.read_text()) if card.exists() else ""
    commit = tags["git_commit"]
    experiment_line = (f"DVC experiment `{exp['dvc.exp.name']}` (baseline `{exp.get('dvc.exp.baseline_rev', '?')[:10]}`)"
                       if exp else "`dvc repro`")
    description = (f"Severe CRS (grade ≥3) risk model trained on the {label}"
                   f"{' — SYNTHETIC, no clinical validity' if prov.get('synthetic') else ''}. "
                   f"Produced by {experiment_line} at git commit `{commit[:10]}`"
                   f"{' (uncommitted changes)' if tags['git_dirty'] == 'true' else ''}. "
                   "Headline metrics are held-out (cross-validated) with patient-level bootstrap 95% CIs; the full "
                   "table is in `metrics_full.json` / `metrics_table.csv`, the TRIPOD+AI model card in `model_card.md`.")
    datasets = []
    features_path = path_of(root, p, "features")
    features_hash = hashes.get("featurize", {}).get(features_key, "")
    oof_hash = hashes.get("train", {}).get(oof_key, "")
    if features_path.exists():
        datasets.append((dataset(pd.read_parquet(features_path), f"training: {label} (patient × landmark rows)",
                                 dvc_source(features_key, features_hash, commit), features_hash or cohort_hash),
                         "training"))
    datasets.append((dataset(oof, f"evaluation: held-out predictions, {p['train']['n_folds']}-fold patient-grouped CV",
                             dvc_source(oof_key, oof_hash, commit), oof_hash), "evaluation"))
    version_tags = {k: v for k, v in tags.items() if k.startswith(("cohort.", "git_", "dvc.exp.", "model.family"))}
    version_tags |= {"dvc.cohort": f"{cohort_key}@{cohort_hash}", "training_patients": str(record.n_patients)}
    registration = Registration(
        model_name=r["model_name"], experiment=r["experiment"], bundle_dir=path_of(root, p, "model"),
        reference_dir=reference_dir(root), params=p, metrics=metrics, training_patients=record,
        input_example=example, gates=r["gates"], run_name=run_name, run_description=description,
        model_description=summary, tags=tags, version_tags=version_tags, artifacts=artifacts, datasets=datasets,
        compare=champion_comparison(root, p, cohort_hash), challenger_alias=r["challenger_alias"],
        champion_alias=r["champion_alias"], settings=r)
    result = log_and_register(registration, root)
    path_of(root, p, "registration").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    path_of(root, p, "registered").write_text(json.dumps(registered_inputs(root, p), indent=2, sort_keys=True) + "\n")
    return result


def registered_inputs(root: Path, p: dict[str, Any]) -> dict[str, str]:
    """sha256 of every file the registration was made from: the stage's DVC output, a pure function of
    its inputs (the registration itself, with run ids and times, goes to paths.registration)."""
    import hashlib

    from pipeline.common import path_of, relative

    digests = {}
    for key in ("model", "metrics", "metrics_full", "model_card", "explain"):
        path = path_of(root, p, key)
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                digests[relative(file, root)] = hashlib.sha256(file.read_bytes()).hexdigest()
    return digests


def run(args: argparse.Namespace) -> int:
    result = register()
    gate = result["gate"]
    print(f"registered {result['model_name']} version {result['version']} as {', '.join(result['aliases'])}")
    print(f"promotion gate: {gate['decision'].upper()}")
    for reason in gate["reasons"]:
        print(f"  - {reason}")
    if result.get("abandoned_runs_failed"):
        print(f"marked FAILED: runs left RUNNING by killed registrations {result['abandoned_runs_failed']}")
    print(f"champion is version {result['champion_version']}; tracking URI {result['tracking_uri']}")
    if result["tracking_uri"].startswith("sqlite:"):
        print(f"see it: `make ui`, then http://127.0.0.1:5000/#/experiments/{result['experiment_id']}/runs/"
              f"{result['run_id']}?workflowType=machine_learning")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["register", *(sys.argv[1:] if argv is None else argv)], only="register")


if __name__ == "__main__":
    raise SystemExit(main())
