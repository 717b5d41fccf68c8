"""Stage `register`: one MLflow run (params, metrics, plots, SHAP, model card) and a new version of
the registered model, aliased `challenger`; `champion` only if it passes the gates in params.yaml."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

HELP = "log the run to MLflow and register the model behind the promotion gates (DVC stage)"
LINEAGE_STAGES = ("simulate", "ingest", "featurize", "train", "evaluate", "explain")


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Reads params.yaml `register` and the outputs of train, evaluate and explain; logs to "
                     "MLFLOW_TRACKING_URI (default: the project's sqlite:///<project>/mlflow.db).")


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def lineage_tags(root: Path, p: dict[str, Any]) -> dict[str, str]:
    """Git commit, dirty flag, DVC hashes of the stage outputs (from dvc.lock) and cohort provenance."""
    from pipeline.common import cohort_provenance

    tags = {"git_commit": _git(root, "rev-parse", "HEAD") or "unknown",
            "git_dirty": str(bool(_git(root, "status", "--porcelain"))).lower()}
    lock = root / "dvc.lock"
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in LINEAGE_STAGES:
            for out in stages.get(stage, {}).get("outs", []):
                tags[f"dvc.{stage}.{out['path']}"] = str(out.get("md5", ""))
    prov = cohort_provenance(root, p)
    tags["cohort.synthetic"] = str(bool(prov.get("synthetic", False))).lower()
    for key in ("source", "simulator_version", "seed", "patients", "path"):
        if key in prov:
            tags[f"cohort.{key}"] = str(prov[key])
    return tags


def input_example(cohort, pseudonymise: bool, n_patients: int = 2):
    """Input example for the logged model: real rows; patient ids replaced by EXAMPLE-1, ... unless
    the user opted in (`register.log_patient_ids: true`)."""
    from models.model_input import to_model_input

    first = cohort.patients["patient_id"].head(n_patients).tolist()
    pick = cohort.labs["patient_id"].isin(first)
    events = cohort.events  # None: treatments not recorded in this cohort
    example = to_model_input(cohort.labs[pick], cohort.patients[cohort.patients["patient_id"].isin(first)],
                             events[events["patient_id"].isin(first)] if events is not None else None)
    if not pseudonymise:
        return example
    mapping = {pid: f"EXAMPLE-{i + 1}" for i, pid in enumerate(first)}
    return example.assign(patient_id=example["patient_id"].map(mapping))


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


def champion_comparison(root: Path, p: dict[str, Any], cohort_tag: str):
    """The I/O around :func:`models.gates.compare_with_champion`: the champion's run tags, and (for
    another cohort) the champion model scored on the challenger's held-out rows."""
    import pandas as pd

    from cohorts.io import read_cohort
    from models.external import external_predictions
    from models.gates import compare_with_champion
    from pipeline.common import path_of
    from scoring.batch import load_model

    def compare(client, champion) -> tuple[float, float, str]:
        oof = pd.read_parquet(path_of(root, p, "oof"))
        run = client.get_run(champion.run_id)
        theirs = run.data.tags.get(cohort_tag)
        if theirs and theirs == lineage_tags(root, p).get(cohort_tag):
            result = compare_with_champion(oof, True, run.data.metrics.get("pooled.xgb_kinetics.auroc", float("nan")))
        else:
            bundle = load_model(f"models:/{champion.name}/{champion.version}").bundle
            cohort = read_cohort(path_of(root, p, "cohort"))
            scored = external_predictions(bundle, cohort, sorted(oof["landmark_hours"].unique().tolist()))
            result = compare_with_champion(oof, False, champion_scores=scored)
        return result.champion_auroc, result.challenger_auroc, result.how

    return compare


def register() -> dict[str, Any]:
    import pandas as pd

    from cohorts.io import read_cohort
    from crs_settings import reference_dir
    from models.registry import flatten, log_and_register
    from pipeline.common import path_of, stage_context

    root, p = stage_context("register")
    r = p["register"]
    metrics = json.loads(path_of(root, p, "metrics").read_text())
    flat = {k: v for k, v in flatten("", {k: v for k, v in metrics.items() if k not in ("cohort", "models")}, {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and v == v}
    cohort = read_cohort(path_of(root, p, "cohort"))
    example = input_example(cohort, pseudonymise=not r["log_patient_ids"])
    tags = lineage_tags(root, p)
    oof = pd.read_parquet(path_of(root, p, "oof"))
    tags |= {"patients": str(oof["patient_id"].nunique()), "events": str(int(oof["label"].sum())),
             "prevalence": f"{oof['label'].mean():.4f}",
             "negative_control": str(bool(p["train"]["negative_control"])).lower()}
    artifacts = [path_of(root, p, k) for k in ("metrics", "model_card", "plots", "explain")]
    validation = sanitised_validation(root, p)
    if validation is not None:
        artifacts.append(validation)
    result = log_and_register(
        root=root, model_name=r["model_name"], experiment=r["experiment"], bundle_dir=path_of(root, p, "model"),
        params=p, metrics=flat, artifacts=artifacts, tags=tags, input_example=example, gates=r["gates"],
        reference_dir=reference_dir(root),
        compare_with_champion=champion_comparison(root, p, f"dvc.ingest.{p['paths']['cohort']}"),
        challenger_alias=r["challenger_alias"], champion_alias=r["champion_alias"])
    path_of(root, p, "registration").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    path_of(root, p, "registered").write_text(json.dumps(registered_inputs(root, p), indent=2, sort_keys=True) + "\n")
    return result


def registered_inputs(root: Path, p: dict[str, Any]) -> dict[str, str]:
    """sha256 of every file the registration was made from: the stage's DVC output, a pure function of
    its inputs (the registration itself, with run ids and times, goes to paths.registration)."""
    import hashlib

    from pipeline.common import path_of, relative

    digests = {}
    for key in ("model", "metrics", "model_card", "explain"):
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
    print(f"champion is version {result['champion_version']}; tracking URI {result['tracking_uri']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["register", *(sys.argv[1:] if argv is None else argv)], only="register")


if __name__ == "__main__":
    raise SystemExit(main())
