"""Ingest throughput and peak memory: a 10-million-row long-format cohort as CSV and as Parquet.

    python -m benchmarks.bench_ingest [--rows 10000000] [--dir /tmp/crs-bench-ingest]

The input is generated (vectorised) to look like a site export: analyte names and units as people
write them (IL-6 / Interleukin 6, CRP in mg/dL, x10^3/uL, ...), 1% text values such as '<1.5' and
'2,5', 0.1% unknown analytes, 0.1% duplicates. Each ingest runs in a fresh process, so its peak
RSS is its own. Reported: seconds, lab rows/second, rows out/quarantined, peak RSS.

Measured 2026-11-27 (commit d152b42), 2 vCPU Xeon, 23 GB RAM, other jobs running (load average ~3.6),
10,000,000 rows (labs.csv 410 MiB, labs.parquet 89 MiB), 1,000,000-row chunks:
  CSV      43.3 s   231,155 rows/s   peak RSS 2,671 MiB   9,967,511 out, 32,489 quarantined
  Parquet  39.3 s   254,596 rows/s   peak RSS 2,670 MiB   (same rows)
The same run while the test suite used the other core: CSV 103 s (96,869 rows/s), Parquet 40 s.
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

import numpy as np

# (name as written, unit as written, typical value in that unit)
WRITTEN = [("IL-6", "pg/mL", 20), ("Interleukin 6", "ng/L", 20), ("IFN-gamma", "pg/mL", 10), ("CRP", "mg/L", 30),
           ("C-reactive protein", "mg/dL", 3), ("Ferritin", "ug/L", 800), ("Ang-2", "pg/mL", 3000),
           ("PLT", "x10^3/uL", 150), ("LDH", "U/L", 300), ("Creatinine", "mg/dL", 1)]
ROWS_PER_PATIENT = 100


def generate(folder: Path, rows: int, seed: int = 1) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_pat = max(1, rows // ROWS_PER_PATIENT)
    pids = np.char.add("P", np.arange(n_pat).astype(str))
    pid = np.repeat(pids, ROWS_PER_PATIENT)[:rows]
    pick = rng.integers(0, len(WRITTEN), rows)
    names = np.array([w[0] for w in WRITTEN], dtype=object)[pick]
    units = np.array([w[1] for w in WRITTEN], dtype=object)[pick]
    names[rng.random(rows) < 0.001] = "Troponin"
    hours = np.round(rng.uniform(-72, 336, rows), 2)
    dup = rng.random(rows) < 0.001
    hours[1:][dup[1:]] = hours[:-1][dup[1:]]
    names[1:][dup[1:]], units[1:][dup[1:]], pid[1:][dup[1:]] = names[:-1][dup[1:]], units[:-1][dup[1:]], pid[:-1][dup[1:]]
    typical = np.array([w[2] for w in WRITTEN], dtype=float)[pick]
    value = np.round(typical * np.exp(rng.normal(0, 0.8, rows)), 3).astype(str)
    text = rng.random(rows)
    value[text < 0.005] = "<1.5"
    value[(text >= 0.005) & (text < 0.01)] = "2,5"
    labs = pa.table({"patient_id": pid, "analyte": names, "hours_since_infusion": hours, "value": value,
                     "unit": units})
    patients = pa.table({"patient_id": pids, "therapy": np.full(n_pat, "axi-cel")})
    for kind in ("csv", "parquet"):
        sub = folder / kind
        sub.mkdir(parents=True, exist_ok=True)
        if kind == "csv":
            pacsv.write_csv(labs, sub / "labs.csv")
            pacsv.write_csv(patients, sub / "patients.csv")
        else:
            pq.write_table(labs, sub / "labs.parquet")
            pq.write_table(patients, sub / "patients.parquet")


def one(folder: Path) -> dict:
    from cohorts.ingest import ingest, write_ingested

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = ingest("long", folder)
        write_ingested(result, out)
        seconds = time.perf_counter() - t0
    v = result.validation
    return {"input": folder.name, "rows_in": v["rows_in"], "rows_out": v["rows_out"],
            "rows_quarantined": v["rows_quarantined"], "seconds": round(seconds, 1),
            "rows_per_s": round(v["rows_in"] / seconds),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "by_reason": v["by_reason"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="keep the generated input here")
    ap.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        t0 = time.perf_counter()
        if not (folder / "parquet" / "labs.parquet").exists():
            generate(folder, args.rows)
        print(f"input: {args.rows} lab rows generated in {time.perf_counter() - t0:.0f}s; "
              f"labs.csv {(folder / 'csv' / 'labs.csv').stat().st_size / 2**20:.0f} MiB, "
              f"labs.parquet {(folder / 'parquet' / 'labs.parquet').stat().st_size / 2**20:.0f} MiB",
              flush=True)
        for kind in ("csv", "parquet"):
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_ingest", "--one", str(folder / kind)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            print(json.dumps(json.loads(out.stdout.strip().splitlines()[-1])), flush=True)


if __name__ == "__main__":
    main()
