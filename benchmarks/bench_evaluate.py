"""Wall and CPU time of the evaluation (every measure with patient-level bootstrap CIs, per landmark,
pooled and by subgroup) on the held-out table of the default run, for several resample counts.

    python -m benchmarks.bench_evaluate [--oof data/oof/oof.parquet] [--boot 200,1000] [--repeat 3]

Needs the held-out predictions of a run (`make run` writes data/oof/oof.parquet: 3,000 simulated
patients, 11,725 landmark rows). Each count runs in a fresh process, best of `--repeat` (the machine
is shared: wall time depends on load, CPU time much less).

Measured 2026-11-29 on this project's 2-core machine, heavily shared (load average 10-16 on 2
cores: wall times are inflated ~4-5x, CPU seconds are the fair comparison), the same held-out table
(default run before issue 12: 11,725 rows, 3,000 patients), seconds best of runs:

| implementation | resamples | CPU s | wall s | peak RSS |
|---|---|---|---|---|
| before: `bootstrap_ci`, `point_metrics` called once per resample (commit bb2ed33) | 200 | 57.4 | 329 | 254 MiB |
| before | 1,000 | 274.6 | 1,476 (1 run) | 255 MiB |
| after: resamples as row weights, weighted measures over all resamples of a block | 200 | 3.3 | 12.3 | 342 MiB |
| after | 1,000 | 13.2 | 40.1 | 441 MiB |

17-21x less CPU, and the "after" rows also compute one more comparator (the case-mix prevalence:
its AUROC, AUPRC, Brier, calibration and ΔAUROC, each with CIs). CIs are equal to the "before"
ones to 1e-9 for the same seed (tests/test_evaluate.py, tests/test_metrics.py).
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks.common import in_subprocess, peak_rss_mib, print_table


def one(oof_path: str, n_boot: int) -> dict:
    import pandas as pd

    from crs_settings import load_params
    from models.evaluate import evaluate_predictions

    e = load_params()["evaluate"]
    oof = pd.read_parquet(oof_path)
    t0, c0 = time.perf_counter(), time.process_time()
    evaluate_predictions(oof, n_boot, int(e["seed"]), int(e["subgroup_min_events"]))
    return {"resamples": n_boot, "rows": len(oof), "patients": int(oof["patient_id"].nunique()),
            "wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
            "peak_rss_mib": round(peak_rss_mib())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--oof", default="data/oof/oof.parquet")
    ap.add_argument("--boot", default="200,1000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.oof, args.one)))
        return
    rows = []
    for n in args.boot.split(","):
        runs = [in_subprocess("benchmarks.bench_evaluate", "--oof", args.oof, "--one", n) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["wall_s"])
        rows.append({**best, "cpu_s_best": min(r["cpu_s"] for r in runs), "runs": len(runs)})
    print("evaluate_predictions: bootstrap CIs for every measure, pooled, per landmark, by subgroup")
    print_table(rows)


if __name__ == "__main__":
    main()
