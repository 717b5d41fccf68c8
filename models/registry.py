"""MLflow logging and the model registry (aliases, not stages)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

PACKAGES = ["cohorts", "features", "models", "pipeline"]
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


def signature(example: pd.DataFrame):
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    inferred = infer_signature(example)
    required = {"patient_id", "analyte", "hours_since_infusion", "value"}
    inputs = Schema([ColSpec(c.type, c.name, required=c.name in required) for c in inferred.inputs.inputs])
    outputs = Schema([ColSpec("string", "patient_id"), ColSpec("double", "landmark_hours"),
                      ColSpec("string", "status"), ColSpec("double", "probability"),
                      ColSpec("string", "risk_band")])
    from mlflow.models import ModelSignature

    return ModelSignature(inputs=inputs, outputs=outputs,
                          params=ParamSchema([ParamSpec("landmarks", "string", "24,48,72,96")]))


def log_and_register(*, root: Path, model_name: str, alias: str, experiment: str, bundle_dir: Path,
                     params: dict[str, Any], metrics: dict[str, float], artifacts: list[Path],
                     tags: dict[str, str], input_example: pd.DataFrame) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    from pipeline.paths import artifact_root, tracking_uri

    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri)
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
            artifacts={"bundle": str(bundle_dir)},
            code_paths=[str(source_root / p) for p in PACKAGES],
            signature=signature(input_example),
            input_example=(input_example, {"landmarks": "24,48"}),
            pip_requirements=pinned_requirements(),
            registered_model_name=model_name,
        )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(model_name, alias, version)
        result = {"run_id": run.info.run_id, "model_uri": info.model_uri, "model_name": model_name,
                  "version": version, "alias": alias, "tracking_uri": uri}
        mlflow.log_text(json.dumps(result, indent=2), "registration.json")
    return result
