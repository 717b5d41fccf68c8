"""Simulator throughput and peak memory: patients/second streaming to Parquet.

    python -m benchmarks.bench_simulate [--patients 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import in_subprocess, peak_rss_mib, print_table

MIX = {"axi-cel": 0.25, "tisa-cel": 0.2, "liso-cel": 0.15, "brexu-cel": 0.1, "ide-cel": 0.1,
       "cilta-cel": 0.1, "blinatumomab": 0.1}


def one(n: int, chunk_size: int) -> dict:
    from cohorts.simulate import write_simulated_cohort

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        counts = write_simulated_cohort(tmp, n, seed=1, therapy_mix=MIX, chunk_size=chunk_size)
        seconds = time.perf_counter() - t0
        size_mib = sum(p.stat().st_size for p in Path(tmp).glob("*.parquet")) / 2**20
    return {"patients": n, "lab_rows": counts["labs"], "seconds": round(seconds, 1),
            "patients_per_s": round(n / seconds), "lab_rows_per_s": round(counts["labs"] / seconds),
            "parquet_mib": round(size_mib), "peak_rss_mib": round(peak_rss_mib())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", default="10000,100000,1000000")
    ap.add_argument("--chunk-size", type=int, default=20_000)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.chunk_size)))
        return
    rows = [in_subprocess("benchmarks.bench_simulate", "--one", n, "--chunk-size", str(args.chunk_size))
            for n in args.patients.split(",")]
    print("simulate → Parquet (streamed in chunks of", args.chunk_size, "patients)")
    print_table(rows)


if __name__ == "__main__":
    main()
