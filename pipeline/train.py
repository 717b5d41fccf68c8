"""Stage `train`: nested patient-grouped cross-validation with the candidate family chosen inside each
outer fold, and the baselines on the same folds (held-out predictions → data/oof), then the final
model, selected the same way on all rows (→ data/model, with the pretrained prior beside it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "nested patient-grouped CV of the model and its baselines; the final model (DVC stage)"


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Reads params.yaml `train` and `featurize` of the project, the feature matrix "
                     "(paths.features) and the pretrained prior (paths.pretrained); writes the model folder "
                     "(paths.model) and the held-out predictions (paths.oof).")


def train(features_path: Path | None = None, out_dir: Path | None = None) -> dict[str, Any]:
    import shutil

    import pandas as pd

    from features.transformer import KineticFeatures
    from models.crossval import TrainConfig
    from models.pretrained import PretrainedPrior
    from models.train import permute_labels, train_model
    from pipeline.common import parse_landmarks, path_of, stage_context

    root, p = stage_context("train")
    matrix = pd.read_parquet(features_path or path_of(root, p, "features"))
    if p["train"]["negative_control"]:
        matrix = permute_labels(matrix, int(p["train"]["seed"]))
    from crs_settings.progress import Progress

    prior_dir = path_of(root, p, "pretrained")
    wants_prior = "xgb_pretrained" in (p["train"].get("candidates") or [])
    prior = PretrainedPrior.load(prior_dir) if wants_prior and (prior_dir / "booster.ubj").exists() else None
    cfg = TrainConfig.from_params(p["train"], prior=prior)
    with Progress(int(cfg.n_folds) + 1, unit="fits", desc="crs train (outer folds, then the final model)") as bar:
        bundle, oof = train_model(matrix, KineticFeatures.from_params(p["featurize"]), cfg, progress=bar.update)
    bundle.meta["risk_band_edges"] = list(p["score"]["risk_band_edges"])
    bundle.meta["landmarks_hours"] = parse_landmarks(p["featurize"]["landmarks_hours"])
    model_dir = out_dir or path_of(root, p, "model")
    bundle.save(model_dir)
    if prior is not None:  # the prior travels with the model it may have shaped (logged with it by register)
        shutil.copytree(prior_dir, model_dir / "pretrained", dirs_exist_ok=True)
    oof_path = path_of(root, p, "oof")
    oof_path.parent.mkdir(parents=True, exist_ok=True)
    oof.to_parquet(oof_path, index=False)
    return bundle.meta


def run(args: argparse.Namespace) -> int:
    meta = train()
    print(f"trained on {meta['n_patients']} patients, {meta['n_rows']} landmark rows, {meta['n_events']} events")
    folds = ", ".join(f["family"] for f in meta["outer_folds"])
    scores = ", ".join(f"{k} {v:.3f}" for k, v in meta["candidates_inner_auroc"].items())
    print(f"family chosen per outer fold: {folds}; final model: {meta['family']} (inner AUROC {scores})")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["train", *(sys.argv[1:] if argv is None else argv)], only="train")


if __name__ == "__main__":
    raise SystemExit(main())
