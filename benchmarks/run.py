"""Speed and peak memory of the hot paths, measured (never asserted in tests).

    python -m benchmarks.run [--patients 10000,100000]

Each size runs in a fresh subprocess so peak RSS belongs to that size alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIX = {"axi-cel": 0.25, "tisa-cel": 0.2, "liso-cel": 0.15, "brexu-cel": 0.1, "ide-cel": 0.1,
       "cilta-cel": 0.1, "blinatumomab": 0.1}


def one(n: int) -> dict:
    import pandas as pd

    from cohorts.simulate import write_simulated_cohort
    from features.transformer import KineticFeatures

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        counts = write_simulated_cohort(tmp, n, seed=1, therapy_mix=MIX)
        t1 = time.perf_counter()
        labs = pd.read_parquet(Path(tmp) / "labs.parquet")
        patients = pd.read_parquet(Path(tmp) / "patients.parquet")
        t2 = time.perf_counter()
        matrix = KineticFeatures().build(labs, patients, [24.0, 48.0, 72.0, 96.0])
        t3 = time.perf_counter()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"patients": n, "lab_rows": counts["labs"], "simulate_s": round(t1 - t0, 2),
            "simulate_patients_per_s": round(n / (t1 - t0)), "featurize_s": round(t3 - t2, 2),
            "featurize_lab_rows_per_s": round(counts["labs"] / (t3 - t2)),
            "feature_rows": len(matrix), "peak_rss_mib": round(peak_mib)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", default="10000,100000")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one)))
        return
    rows = []
    for n in (int(x) for x in args.patients.split(",")):
        out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--one", str(n)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    keys = list(rows[0])
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(str(r[k]) for k in keys))


if __name__ == "__main__":
    main()
