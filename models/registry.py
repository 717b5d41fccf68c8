"""MLflow logging and the model registry (aliases, not stages)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

PACKAGES = ["crs_settings", "cohorts", "features", "models"]  # what the pyfunc imports
REQUIREMENTS = ["mlflow", "xgboost-cpu", "pandas", "numpy", "scikit-learn", "pyarrow", "pyyaml", "scipy"]


def pinned_requirements() -> list[str]:
    """Exact versions of what the pyfunc imports (explicit, so MLflow does not infer `xgboost`)."""
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


def _experiment(client, name: str, artifact_location: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


def signature(example: pd.DataFrame, landmarks: str):
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    inferred = infer_signature(example)
    required = {"patient_id", "analyte", "hours_since_infusion", "value"}
    inputs = Schema([ColSpec(c.type, c.name, required=c.name in required) for c in inferred.inputs.inputs])
    drivers = [ColSpec(t, f"driver_{k}_{part}") for k in (1, 2, 3)
               for part, t in (("feature", "string"), ("contribution", "double"), ("text", "string"))]
    outputs = Schema([ColSpec("string", "patient_id"), ColSpec("double", "landmark_hours"),
                      ColSpec("string", "status"), ColSpec("double", "probability"),
                      ColSpec("string", "risk_band"), *drivers, ColSpec("string", "top_drivers")])
    from mlflow.models import ModelSignature

    return ModelSignature(inputs=inputs, outputs=outputs,
                          params=ParamSchema([ParamSpec("landmarks", "string", landmarks),
                                              ParamSpec("as_of", "string", ""),
                                              ParamSpec("reasons", "string", "")]))


HISTORY_TAG = "champion_history"


def client_for(root: Path | None = None):
    import mlflow
    from mlflow import MlflowClient

    from crs_settings import require_tracking_uri

    uri = require_tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri), uri


def alias_version(client, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception:  # MLflow raises RestException / MlflowException when the alias is not set
        return None


def set_champion(client, name: str, version: str, alias: str = "champion") -> None:
    """Point `alias` at `version` and append it to the registered model's champion history."""
    client.set_registered_model_alias(name, alias, version)
    model = client.get_registered_model(name)
    history = [v for v in model.tags.get(HISTORY_TAG, "").split(",") if v]
    if not history or history[-1] != version:
        history.append(version)
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))


def rollback(client, name: str, alias: str = "champion") -> str:
    """Move `alias` back to the previous champion in the history; returns that version."""
    from cohorts.errors import CohortError

    model = client.get_registered_model(name)
    history = [v for v in model.tags.get(HISTORY_TAG, "").split(",") if v]
    if len(history) < 2:
        raise CohortError(f"Model {name!r} has no earlier champion to roll back to (history: {history or 'empty'})")
    history.pop()
    client.set_registered_model_alias(name, alias, history[-1])
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
    return history[-1]


def list_versions(client, name: str) -> pd.DataFrame:
    rows = []
    aliases: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model(name).aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    for mv in client.search_model_versions(f"name='{name}'"):
        run = client.get_run(mv.run_id) if mv.run_id else None
        metrics = run.data.metrics if run else {}
        tags = run.data.tags if run else {}
        rows.append({"version": int(mv.version), "aliases": ",".join(sorted(aliases.get(str(mv.version), []))),
                     "auroc": metrics.get("pooled.xgb_kinetics.auroc"),
                     "auroc_ci_low": metrics.get("pooled.xgb_kinetics.auroc_ci_low"),
                     "calibration_slope": metrics.get("pooled.xgb_kinetics.calibration_slope"),
                     "gate": tags.get("gate.decision", ""), "synthetic": tags.get("cohort.synthetic", ""),
                     "git_commit": tags.get("git_commit", "")[:10], "run_id": mv.run_id})
    return pd.DataFrame(rows).sort_values("version", ascending=False) if rows else pd.DataFrame(rows)


def log_and_register(*, root: Path, model_name: str, experiment: str, bundle_dir: Path,
                     params: dict[str, Any], metrics: dict[str, float], artifacts: list[Path],
                     tags: dict[str, str], input_example: pd.DataFrame, gates: dict[str, Any],
                     reference_dir: Path, compare_with_champion=None,
                     challenger_alias: str = "challenger", champion_alias: str = "champion") -> dict[str, Any]:
    """One MLflow run: params, metrics, tags, artifacts and the pyfunc model. The new version gets
    `challenger_alias`; it becomes `champion_alias` only if :func:`models.gates.decide` says so.

    `compare_with_champion(client, champion_version) -> (champion_auroc, challenger_auroc, how)` on the
    same validation rows; `how` says how the comparison was made.
    """
    import mlflow

    from crs_settings import artifact_root
    from models.gates import decide

    client, uri = client_for(root)
    meta = json.loads((Path(bundle_dir) / "meta.json").read_text())
    landmarks = ",".join(f"{float(x):g}" for x in meta["landmarks_hours"])  # the model's own landmarks
    local_store = uri.startswith("sqlite:") or uri.startswith("file:")
    exp_id = _experiment(client, experiment, artifact_root(root).as_uri() if local_store else None)
    source_root = Path(__file__).resolve().parent.parent
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_params({k: str(v)[:6000] for k, v in flatten("", params, {}).items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.set_tags(tags)
        for path in artifacts:
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            elif path.exists():
                mlflow.log_artifact(str(path))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(source_root / "models" / "serving.py"),
            artifacts={"bundle": str(bundle_dir), "reference": str(reference_dir)},
            code_paths=[str(source_root / p) for p in PACKAGES],
            signature=signature(input_example, landmarks),
            input_example=(input_example, {"landmarks": landmarks}),
            pip_requirements=pinned_requirements(),
            registered_model_name=model_name,
        )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(model_name, challenger_alias, version)
        champion = alias_version(client, model_name, champion_alias)
        same, how = (None, None), ""
        if champion is not None and compare_with_champion is not None:
            *same, how = compare_with_champion(client, client.get_model_version(model_name, champion))
        pooled = {k.removeprefix("pooled."): v for k, v in metrics.items() if k.startswith("pooled.")}
        decision = decide(pooled, gates, *same)
        if how:
            decision.reasons.append(how)
        if decision.promote:
            set_champion(client, model_name, version, champion_alias)
        mlflow.set_tags({"gate.decision": decision.as_dict()["decision"], "gate.reasons": " | ".join(decision.reasons),
                         "gate.previous_champion": champion or ""})
        mlflow.log_dict(decision.as_dict(), "gate_decision.json")
        result = {"run_id": run.info.run_id, "model_uri": info.model_uri, "model_name": model_name,
                  "version": version, "aliases": [challenger_alias] + ([champion_alias] if decision.promote else []),
                  "champion_version": version if decision.promote else champion, "tracking_uri": uri,
                  "gate": decision.as_dict()}
        mlflow.log_dict(result, "registration.json")
    return result
