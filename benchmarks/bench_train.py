"""Wall time of train (nested CV with candidate selection + baselines + final model) and evaluate
(bootstrap CIs) with the settings in params.yaml (and the committed pretrained prior), for simulated
cohorts of several sizes. `cpu_s` is the process CPU time of train (robust on shared cores).

    python -m benchmarks.bench_train [--patients 2000,20000] [--candidates xgb_full]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import in_subprocess, peak_rss_mib, print_table

MIX = {"axi-cel": 0.25, "tisa-cel": 0.2, "liso-cel": 0.15, "brexu-cel": 0.1, "ide-cel": 0.1,
       "cilta-cel": 0.1, "blinatumomab": 0.1}


def one(n: int, candidates: str = "") -> dict:
    from cohorts.simulate import iter_chunks
    from crs_settings import load_params
    from features.transformer import KineticFeatures
    from models.crossval import TrainConfig
    from models.evaluate import evaluate_predictions
    from models.train import train_model
    from pipeline.common import parse_landmarks

    p = load_params()
    if candidates:
        p["train"]["candidates"] = candidates.split(",")
    prior = None
    try:
        from models.pretrained import PretrainedPrior

        prior = PretrainedPrior.load(Path(__file__).resolve().parent.parent / p["paths"]["pretrained"])
    except (ImportError, KeyError, OSError):
        pass  # code before the pretrained family, or no prior: the family is left out
    chunks = list(iter_chunks(n, seed=5, therapy_mix=MIX))
    import pandas as pd

    labs = pd.concat([c.labs for c in chunks], ignore_index=True)
    patients = pd.concat([c.patients for c in chunks], ignore_index=True)
    events = pd.concat([c.events for c in chunks], ignore_index=True)
    features = KineticFeatures.from_params(p["featurize"])
    t0 = time.perf_counter()
    matrix = features.build(labs, patients, parse_landmarks(p["featurize"]["landmarks_hours"]), events=events)
    t1, c1 = time.perf_counter(), time.process_time()
    cfg = TrainConfig.from_params(p["train"], prior=prior) if prior is not None else TrainConfig.from_params(p["train"])
    bundle, oof = train_model(matrix, features, cfg)
    t2, c2 = time.perf_counter(), time.process_time()
    metrics = evaluate_predictions(oof, int(p["evaluate"]["n_bootstrap"]), 1, int(p["evaluate"]["subgroup_min_events"]))
    t3 = time.perf_counter()
    return {"patients": n, "landmark_rows": len(oof), "events": int(oof["label"].sum()),
            "featurize_s": round(t1 - t0, 1), "train_s": round(t2 - t1, 1), "train_cpu_s": round(c2 - c1, 1),
            "family": bundle.meta.get("family", "xgb_full"), "evaluate_s": round(t3 - t2, 1),
            "auroc": round(metrics["pooled"]["xgb_kinetics.auroc"], 3), "peak_rss_mib": round(peak_rss_mib())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", default="2000,20000")
    ap.add_argument("--candidates", default="", help="comma-separated families (default: params train.candidates)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.candidates)))
        return
    extra = ["--candidates", args.candidates] if args.candidates else []
    rows = [in_subprocess("benchmarks.bench_train", "--one", n, *extra) for n in args.patients.split(",")]
    print("train + evaluate with params.yaml settings (nthread per fit from params)")
    print_table(rows)


if __name__ == "__main__":
    main()
