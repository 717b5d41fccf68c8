"""What a registration and an external evaluation write to MLflow, readable in its UI.

- The experiment is tagged for model training (`mlflow.experimentKind`), so the UI does not open it
  in GenAI mode; runs get a meaningful name and a description.
- Metric keys are the headline only: the primary model's AUROC, AUPRC, Brier score and calibration
  slope, each with its 95% CI bounds, pooled and per landmark (`pooled/auroc`, `24h/auroc_ci_low`,
  ...: the UI groups charts by the part before `/`), plus the cohort counts. The full table travels
  as artifacts (`metrics.json`, the headline, and `metrics_full.json` as the evaluate stage wrote them, and
  `metrics_table.csv`).
- Cohorts are logged as MLflow datasets whose digest is the DVC hash and whose source names the DVC
  path, hash and git commit: lineage is one click from the run.
- A model version is born with its gate decision, cohort provenance, git commit and headline
  metrics as tags (so a refused version never looks like a promoted one) and the model card's
  summary as description; the challenger alias is set only after that, the champion alias only if
  the gates said so (journaled and serialised, :mod:`models.registry`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from models.evaluate import hours_of_label
from models.gates import ChampionComparison, GateDecision, decide
from models.registry import (
    PACKAGES,
    Registry,
    flatten,
    pinned_requirements,
    process_tags,
    signature,
    sqlite_path,
)
from models.training_patients import TrainingPatients

PRIMARY = "xgb_kinetics"
HEADLINE = ("auroc", "auprc", "brier", "calibration_slope")
COUNTS = ("n_patients", "n_events", "n_rows", "prevalence")
EXPERIMENT_KIND = "custom_model_development"


def headline_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The MLflow metric keys: primary model's headline measures with CI bounds, pooled and per landmark."""
    scopes = [("pooled", metrics.get("pooled", {}))]
    scopes += [(str(lm), table) for lm, table in sorted((metrics.get("by_landmark") or {}).items(),
                                                         key=lambda kv: hours_of_label(kv[0]))]
    out: dict[str, float] = {}
    for scope, table in scopes:
        for name in HEADLINE:
            for suffix in ("", "_ci_low", "_ci_high"):
                value = table.get(f"{PRIMARY}.{name}{suffix}")
                if _finite(value):
                    out[f"{scope}/{name}{suffix}"] = float(value)
    for name in COUNTS:
        if _finite(metrics.get("pooled", {}).get(name)):
            out[f"cohort/{name}"] = float(metrics["pooled"][name])
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def metrics_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Every number of metrics.json as one long table (key, value), for the CSV artifact."""
    flat = flatten("", metrics, {})
    return pd.DataFrame({"key": list(flat), "value": [str(v) for v in flat.values()]})


def model_card_summary(card: str, sections: tuple[str, ...] = ("Intended use", "Source of data", "Outcome",
                                                                  "Sample size and events")) -> str:
    """The title and a few sections of the TRIPOD+AI model card, as Markdown."""
    lines = card.splitlines()
    title = next((ln for ln in lines if ln.startswith("# ")), "")
    parts, keep = [f"###{title[1:]}"] if title else [], False  # headings two levels down: it sits in a page
    for ln in lines:
        if ln.startswith("## "):
            keep = ln[3:].strip() in sections
            if keep:
                parts.append(f"####{ln[2:]}")
                continue
        if keep:
            parts.append(ln)
    return "\n".join(parts).strip()


# ----------------------------------------------------------------------------- datasets

def dvc_source(path: str, md5: str, git_commit: str = ""):
    """A dataset source naming a DVC-tracked path, its hash and the commit (no machine path)."""
    from mlflow.data.dataset_source import DatasetSource

    class DvcDatasetSource(DatasetSource):
        def __init__(self, path: str, md5: str, git_commit: str = "") -> None:
            self.path, self.md5, self.git_commit = path, md5, git_commit

        @staticmethod
        def _get_source_type() -> str:
            return "dvc"

        def load(self, **kwargs):
            raise NotImplementedError("check out the DVC path at the commit, then read it")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any):
            raise NotImplementedError

        def to_dict(self) -> dict[str, Any]:
            return {"path": self.path, "dvc_md5": self.md5, "git_commit": self.git_commit}

        @classmethod
        def from_dict(cls, source_dict: dict[str, Any]):
            return cls(source_dict.get("path", ""), source_dict.get("dvc_md5", ""), source_dict.get("git_commit", ""))

    return DvcDatasetSource(path, md5, git_commit)


def dataset(frame: pd.DataFrame, name: str, source, digest: str, targets: str | None = "label"):
    """An MLflow dataset of `frame`'s schema and size (the rows themselves are never logged)."""
    import mlflow.data

    return mlflow.data.from_pandas(frame, source=source, name=name, digest=(digest or "unknown")[:36],
                                   targets=targets if targets in frame.columns else None)


# ----------------------------------------------------------------------------- registration

@dataclass
class Registration:
    model_name: str
    experiment: str
    bundle_dir: Path
    reference_dir: Path
    params: dict[str, Any]
    metrics: dict[str, Any]                # metrics.json as the evaluate stage wrote it
    training_patients: TrainingPatients
    input_example: pd.DataFrame
    gates: dict[str, Any]
    run_name: str
    run_description: str
    model_description: str                 # the model card's summary
    tags: dict[str, str] = field(default_factory=dict)          # run tags (lineage, provenance)
    version_tags: dict[str, str] = field(default_factory=dict)  # extra tags of the new version
    artifacts: list[Path] = field(default_factory=list)
    datasets: list[tuple[Any, str]] = field(default_factory=list)  # (mlflow dataset, context)
    compare: Callable[[Registry, Any], ChampionComparison] | None = None
    challenger_alias: str = "challenger"
    champion_alias: str = "champion"
    settings: dict[str, Any] = field(default_factory=dict)     # params `register` (store timeouts)


def decision_tags(decision: GateDecision, previous_champion: str | None) -> dict[str, str]:
    d = decision.as_dict()
    vs = decision.checks.get("vs_champion") or {}
    tags = {"gate.decision": d["decision"], "gate.reasons": " | ".join(decision.reasons)[:5000],
            "gate.previous_champion": previous_champion or ""}
    if vs:
        tags["gate.comparison"] = "made" if vs.get("possible") else "no fair comparison possible"
        for key in ("rows_used", "patients_used", "event_patients_used", "rows_excluded_overlap",
                    "patients_excluded_overlap", "event_patients_excluded_overlap"):
            tags[f"gate.{key}"] = str(vs.get(key, ""))
    else:
        tags["gate.comparison"] = "no champion"
    return tags


def metric_tags(metrics: dict[str, Any]) -> dict[str, str]:
    pooled = metrics.get("pooled", {})
    out = {}
    for name in HEADLINE:
        for suffix in ("", "_ci_low", "_ci_high"):
            value = pooled.get(f"{PRIMARY}.{name}{suffix}")
            if _finite(value):
                out[f"metric.{name}{suffix}"] = f"{float(value):.4f}"
    return out


def artifact_location(uri: str) -> str | None:
    """Artifacts of a sqlite store live beside its database (`mlartifacts/`: the project's store
    keeps them in the project, `make ui` serves them); a tracking server chooses its own."""
    db = sqlite_path(uri)
    return (db.parent / "mlartifacts").resolve().as_uri() if db is not None else None


def log_and_register(reg: Registration, root: Path | None = None) -> dict[str, Any]:
    """Gate decision first, then one MLflow run with the model, then the version (born with its
    decision as tags), then the aliases. Nothing is written when reading the registry fails."""
    import mlflow

    registry = Registry.open(reg.model_name, root, reg.settings)
    exp_id = registry.experiment(reg.experiment, artifact_location(registry.uri))
    registry.call("tagging the experiment", registry.client.set_experiment_tag, exp_id, "mlflow.experimentKind",
                  EXPERIMENT_KIND)
    abandoned = registry.fail_dead_runs(exp_id)
    before = registry.state(reg.champion_alias)
    champion = registry.version(before.version) if before.version else None
    comparison = reg.compare(registry, champion) if champion is not None and reg.compare else None
    decision = decide(reg.metrics.get("pooled", {}), reg.gates, comparison)
    if before.repaired:
        decision.reasons.append(f"registry repaired before deciding: {before.repaired}")
    tmp = Path(tempfile.mkdtemp(prefix="crs-register-"))
    source_root = Path(__file__).resolve().parent.parent
    landmarks = ",".join(f"{float(x):g}" for x in json.loads((reg.bundle_dir / "meta.json").read_text())["landmarks_hours"])
    with mlflow.start_run(experiment_id=exp_id, run_name=reg.run_name, description=reg.run_description,
                          tags={**reg.tags, **process_tags(), "crs.kind": "registration"}) as run:
        mlflow.log_params({k: str(v)[:6000] for k, v in flatten("", reg.params, {}).items()})
        mlflow.log_metrics(headline_metrics(reg.metrics))
        for ds, context in reg.datasets:
            mlflow.log_input(ds, context=context)
        for path in reg.artifacts:
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            elif path.exists():
                mlflow.log_artifact(str(path))
        metrics_table(reg.metrics).to_csv(tmp / "metrics_table.csv", index=False)
        mlflow.log_artifact(str(tmp / "metrics_table.csv"))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(source_root / "models" / "serving.py"),
            artifacts={"bundle": str(reg.bundle_dir), "reference": str(reg.reference_dir),
                       "training_patients": str(reg.training_patients.write(tmp))},
            code_paths=[str(source_root / p) for p in PACKAGES],
            signature=signature(reg.input_example, landmarks),
            input_example=(reg.input_example, {"landmarks": landmarks}),
            pip_requirements=pinned_requirements(),
        )
        registry.ensure_model(reg.model_description)
        registry.call("describing the registered model", registry.client.update_registered_model,
                      reg.model_name, reg.model_description)
        tags = {**reg.version_tags, **metric_tags(reg.metrics), **decision_tags(decision, before.version)}
        mv = registry.call("registering the model version", mlflow.register_model, info.model_uri, reg.model_name,
                           tags=tags)
        version = str(mv.version)
        registry.call("describing the model version", registry.client.update_model_version, reg.model_name,
                      version, _version_description(reg, decision, run.info.run_id))
        with registry.lock():
            now = registry.state(reg.champion_alias, repair=False)
            registry._commit_repair(now)
            if decision.promote and now.version != before.version:
                decision = GateDecision(False, [*decision.reasons, f"not promoted: the champion moved from version "
                                                f"{before.version} to {now.version} while this one was registered; "
                                                "register again to compare with it"], decision.checks)
                for key, value in decision_tags(decision, before.version).items():
                    registry.call("tagging the model version", registry.client.set_model_version_tag,
                                  reg.model_name, version, key, value)
            registry.set_alias(reg.challenger_alias, version)
            if decision.promote:
                registry.move_alias(reg.champion_alias, version, [*now.history, version], now)
        mlflow.set_tags(decision_tags(decision, before.version))
        mlflow.log_dict(decision.as_dict(), "gate_decision.json")
        result = {"run_id": run.info.run_id, "experiment_id": exp_id, "model_uri": f"models:/{reg.model_name}/{version}",
                  "logged_model_uri": info.model_uri, "model_name": reg.model_name, "version": version,
                  "aliases": [reg.challenger_alias] + ([reg.champion_alias] if decision.promote else []),
                  "champion_version": version if decision.promote else before.version,
                  "tracking_uri": registry.uri, "gate": decision.as_dict(), "abandoned_runs_failed": abandoned}
        mlflow.log_dict(result, "registration.json")
    return result


def _version_description(reg: Registration, decision: GateDecision, run_id: str) -> str:
    pooled = reg.metrics.get("pooled", {})

    def ci(name: str) -> str:
        v, lo, hi = (pooled.get(f"{PRIMARY}.{name}{s}") for s in ("", "_ci_low", "_ci_high"))
        return f"{v:.3f} (95% CI {lo:.3f}–{hi:.3f})" if all(_finite(x) for x in (v, lo, hi)) else "n/a"

    head = (f"**Gate decision: {decision.as_dict()['decision'].upper()}** — " + "; ".join(decision.reasons)
            + f"\n\nHeld-out AUROC {ci('auroc')}, AUPRC {ci('auprc')}, Brier {ci('brier')}, calibration slope "
            f"{ci('calibration_slope')}. Run `{run_id}` holds the full model card, metrics table and plots.\n\n")
    return (head + reg.model_description)[:5000]


# ----------------------------------------------------------------------------- external evaluation

def folder_digest(folder: Path) -> str:
    """MD5 over the names and bytes of a cohort folder's tables (what DVC would hash, in spirit)."""
    import hashlib

    outer = hashlib.md5()  # noqa: S324 - a content fingerprint, not security
    for path in sorted(Path(folder).rglob("*")) if Path(folder).is_dir() else [Path(folder)]:
        if path.is_file():
            inner = hashlib.md5()  # noqa: S324
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    inner.update(block)
            outer.update(f"{path.relative_to(folder) if path != Path(folder) else path.name}:{inner.hexdigest()}\n"
                         .encode())
    return outer.hexdigest()


def log_external_evaluation(*, experiment: str, model_name: str, model_version: str, model_uri: str,
                            metrics: dict[str, Any], cohort_label: str, cohort_digest: str, cohort_rows: pd.DataFrame,
                            out_dir: Path, synthetic: bool, settings: dict[str, Any] | None = None,
                            root: Path | None = None) -> str:
    """One MLflow run for `crs evaluate --model --cohort`: the external cohort as an evaluation
    dataset linked to the evaluated model version's logged model, headline metrics (also linked),
    the metrics and plots as artifacts (never the per-patient predictions). Returns the run id."""
    import mlflow
    from mlflow.entities import LoggedModelInput

    registry = Registry.open(model_name, root, settings)
    exp_id = registry.experiment(experiment, artifact_location(registry.uri))
    registry.call("tagging the experiment", registry.client.set_experiment_tag, exp_id, "mlflow.experimentKind",
                  EXPERIMENT_KIND)
    mv = registry.version(model_version)
    model_id = mv.model_id or (mv.source.removeprefix("models:/") if str(mv.source).startswith("models:/m-") else None)
    pooled = metrics.get("pooled", {})
    auroc = pooled.get(f"{PRIMARY}.auroc")
    description = (f"External validation of **{model_name} version {model_version}** on {cohort_label}"
                   f"{' (SYNTHETIC)' if synthetic else ''}: AUROC {auroc if not _finite(auroc) else f'{auroc:.3f}'}, "
                   f"{pooled.get('n_patients', '?')} patients, {pooled.get('n_events', '?')} events. "
                   "Nothing was refitted.")
    ds = dataset(cohort_rows, f"external: {cohort_label}", dvc_source(cohort_label, cohort_digest), cohort_digest)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"external evaluation · {cohort_label} · v{model_version}",
                          description=description,
                          tags={"crs.kind": "external_evaluation", "model.name": model_name,
                                "model.version": str(model_version), "model.uri": model_uri,
                                "cohort.label": cohort_label, "cohort.digest": cohort_digest,
                                "cohort.synthetic": str(bool(synthetic)).lower(), **process_tags()}) as run:
        mlflow.log_input(ds, context="evaluation", model=LoggedModelInput(model_id) if model_id else None)
        headline = headline_metrics(metrics)
        mlflow.log_metrics(headline, model_id=model_id, dataset=ds)
        for name in ("metrics.json", "roc.png", "pr.png", "calibration.png", "decision_curve.png",
                     "roc.csv", "pr.csv", "calibration.csv", "decision_curve.csv"):
            if (Path(out_dir) / name).exists():
                mlflow.log_artifact(str(Path(out_dir) / name))
        metrics_table(metrics).to_csv(Path(out_dir) / "metrics_table.csv", index=False)
        mlflow.log_artifact(str(Path(out_dir) / "metrics_table.csv"))
        return run.info.run_id
