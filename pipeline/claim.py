"""Stage `claim`: the project's central claim measured so that it can fail. Nested feature sets
M0 ⊂ M1 ⊂ M2 (latest values; + baseline-free serial features and treatments; + baseline-relative
features), one fixed XGBoost, repeated patient-grouped CV; paired ΔAUROC with patient-bootstrap
CIs pooled, per landmark, per therapy and on rows with a real pre-infusion baseline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HELP = ("the central claim: do baseline-relative kinetics add to baseline-free serial features? "
        "Nested feature sets by repeated patient-grouped CV (DVC stage)")


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Reads params.yaml `claim` and `featurize` and the feature matrix (paths.features); writes "
                     "paths.claim (JSON) and claim.png / claim.csv under paths.plots.")


def claim(features_path: Path | None = None) -> dict[str, Any]:
    import pandas as pd

    from features.transformer import KineticFeatures
    from models.claim import ClaimConfig, evaluate_claim, feature_tiers
    from models.plots import write_claim
    from models.train import training_rows
    from pipeline.common import cohort_provenance, path_of, stage_context

    root, p = stage_context("claim")
    rows = training_rows(pd.read_parquet(features_path or path_of(root, p, "features")))
    features = KineticFeatures.from_params(p["featurize"]).fit(rows)
    result = evaluate_claim(rows, features.transform(rows), feature_tiers(features), list(features.analytes),
                            ClaimConfig.from_params(p["claim"]))
    prov = cohort_provenance(root, p)
    result["cohort"] = {"synthetic": bool(prov.get("synthetic", False)), "source": prov.get("source", "")}
    label = "SYNTHETIC cohort" if prov.get("synthetic") else "held-out patients"
    write_claim(result, path_of(root, p, "plots"), label)
    path_of(root, p, "claim").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def run(args: argparse.Namespace) -> int:
    result = claim()
    h = result["headline"]
    if not h:
        print(f"claim not measured: {result['subsets']['pooled'].get('suppressed', 'no estimate')}")
        return 0
    for a, b in (("M2", "M1"), ("M1", "M0")):
        key = f"delta_auroc.{a}_minus_{b}"
        print(f"{a} - {b}: ΔAUROC {h[key]:+.4f} (95% CI {h[key + '_ci_low']:+.4f} to {h[key + '_ci_high']:+.4f})")
    print("claim (baseline-relative features add to serial ones): "
          + ("FOUND" if result["claim_found"] else "NOT FOUND"))
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["claim", *(sys.argv[1:] if argv is None else argv)], only="claim")


if __name__ == "__main__":
    raise SystemExit(main())
