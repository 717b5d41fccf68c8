"""Stage `pretrain`: the simulation-pretrained prior of the `xgb_pretrained` candidate.

Simulates a large SYNTHETIC cohort (params.yaml `pretrain.patients`, its own seed, hence its own site worlds drawn from
the simulator's ASSUMPTION ranges; the default world mixture, therapy and site mixes of `simulate`), builds its landmark features exactly
as the featurize stage does (params `featurize`) and trains an XGBoost booster on it
(`pretrain.xgboost`, early stopping on a held-out share of the simulated patients). Writes the
booster, its fitted feature state and a meta.json to paths.pretrained. That folder is committed to
git (DVC output with cache: false), so a fresh clone's `dvc repro` skips this stage.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HELP = "train the simulation-pretrained prior booster on a large SYNTHETIC cohort (DVC stage)"


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Reads params.yaml `pretrain`, `featurize` and the `simulate` mixes; writes the prior "
                     "(booster.ubj, features.json, meta.json) to --out (default paths.pretrained).")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: params paths.pretrained)")


def pretrain(out: Path | None = None) -> dict[str, Any]:
    import json

    import pandas as pd

    from cohorts.errors import CohortError
    from cohorts.simulate import write_simulated_cohort
    from features.chunks import featurize_folder
    from features.transformer import KineticFeatures
    from models.pretrained import pretrain as fit_prior
    from models.train import training_rows
    from pipeline.common import parse_landmarks, path_of, stage_context

    root, p = stage_context("pretrain")
    s, sim, f = p["pretrain"], p["simulate"], p["featurize"]
    if int(s["seed"]) == int(sim["seed"]):
        raise CohortError("pretrain.seed equals simulate.seed: the prior would have seen the default cohort's "
                          "own simulated patients; give pretrain its own seed")
    t0 = time.perf_counter()
    features = KineticFeatures.from_params(f)
    with tempfile.TemporaryDirectory(prefix="crs-pretrain-") as tmp:
        cohort = Path(tmp) / "cohort"
        write_simulated_cohort(cohort, int(s["patients"]), int(s["seed"]), dict(sim["therapy_mix"]),
                               int(sim["chunk_size"]), site_mix=dict(sim["site_mix"]), world="default",
                               randomise=bool(sim.get("randomise", True)), n_worlds=int(sim.get("n_worlds", 8)))
        provenance = json.loads((cohort / "provenance.json").read_text())
        featurize_folder(cohort, Path(tmp) / "matrix.parquet", features, parse_landmarks(f["landmarks_hours"]),
                         chunk_patients=int(f["read_chunk_patients"]))
        matrix = pd.read_parquet(Path(tmp) / "matrix.parquet")
    t1 = time.perf_counter()
    settings = {**s["xgboost"], "validation_fraction": float(s["validation_fraction"])}
    prior = fit_prior(training_rows(matrix), features, settings, int(s["seed"]))
    t2 = time.perf_counter()
    prior.meta.update({"seed": int(s["seed"]), "simulator_version": provenance.get("simulator_version"),
                       "synthetic": True, "therapy_mix": provenance.get("therapy_mix"),
                       "site_mix": provenance.get("site_mix")})
    prior.save(out or path_of(root, p, "pretrained"))
    # timings are printed, never written: the stage's output bytes depend on params and seed only
    return {**prior.meta, "simulate_featurize_seconds": round(t1 - t0, 1), "fit_seconds": round(t2 - t1, 1)}


def run(args: argparse.Namespace) -> int:
    meta = pretrain(args.out)
    print(f"pretrained prior: {meta['n_trees']} trees on {meta['n_patients']} SYNTHETIC patients "
          f"({meta['n_rows']} landmark rows, {meta['n_events']} events); held-out simulated AUROC "
          f"{meta['validation_auroc']:.3f}; simulate+featurize {meta['simulate_featurize_seconds']} s, "
          f"fit {meta['fit_seconds']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["pretrain", *(sys.argv[1:] if argv is None else argv)], only="pretrain")


if __name__ == "__main__":
    raise SystemExit(main())
