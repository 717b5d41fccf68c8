"""`crs score --engine spark` on local[2] beside `crs score` on one machine: patients/s and peak memory.

    python -m benchmarks.bench_spark [--patients 100000,1000000] [--landmarks 24,48]
                                     [--bundle data/model | --model models:/severe-crs@champion]
                                     [--engines local,spark] [--repeat 1] [--workdir DIR]

Cohorts come from the simulator (seed 1, cached in --workdir, as benchmarks/bench_score.py). Each
measurement runs in a fresh subprocess. `seconds`: read, features, predict, write (no drivers:
`--reasons none`) after the model is loaded; for Spark also after the session started
(`start_s`, apart), and including its checks (the output read back: rows per patient). Memory:
`driver_rss` is the Python driver's own peak RSS (ru_maxrss); `tree_rss` the peak of the summed
RSS of the whole process tree (for Spark: the driver JVM, which in local mode also runs the
executors, and the Python workers), sampled every 0.25 s.

Last recorded run: see the table in the README ("When Spark pays"): 100,000 patients, one machine
16.2 s / 876 MiB vs Spark local[2] 48.8 s / 5,484 MiB (process tree).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import in_subprocess, peak_rss_mib, print_table


def _tree_rss_mib(pid: int) -> float:
    """Summed RSS of `pid` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


class TreeSampler:
    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss_mib(os.getpid()))
            self._stop.wait(0.25)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _model(bundle: str | None, model: str):
    from scoring.batch import LoadedModel, load_model

    if bundle:
        from models.bundle import ModelBundle

        return LoadedModel(ModelBundle.load(bundle), "bundle", "", "", bundle)
    return load_model(model)


def run_one(engine: str, folder: Path, model_uri: str, bundle: str | None, landmarks: list[float],
            master: str, per_group: int, driver_memory: str) -> dict:
    loaded = _model(bundle, model_uri)
    out = Path(tempfile.mkdtemp(prefix="crs-bench-spark-")) / "scores.parquet"
    start_s = 0.0
    with TreeSampler() as tree:
        if engine == "local":
            from scoring.batch import canonical_source, score_source

            kf = loaded.bundle.features
            t0 = time.perf_counter()
            with open(os.devnull, "w") as quiet:
                s = score_source(canonical_source(folder, [*kf.analytes, *kf.covariate_analytes]), loaded, out,
                                 landmarks=landmarks, reasons="none", chunk_patients=per_group, progress=False,
                                 log=quiet)
            seconds = time.perf_counter() - t0
        else:
            from features.spark import spark_session
            from scoring.spark import score_cohort_spark

            t0 = time.perf_counter()
            spark = spark_session(master, "crs-bench", {"spark.driver.memory": driver_memory,
                                                        "spark.sql.shuffle.partitions": "200"})
            spark.range(1).count()
            start_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            s = score_cohort_spark(folder, "", out, model=loaded, landmarks=landmarks, reasons="none", spark=spark,
                                   patients_per_group=per_group)
            seconds = time.perf_counter() - t0
            spark.stop()
    import shutil

    shutil.rmtree(out.parent, ignore_errors=True)
    return {"engine": engine if engine == "local" else f"spark {master}", "patients": s["patients_read"],
            "rows": s["rows_written"], "rows_scored": s["rows_scored"], "start_s": round(start_s, 1),
            "seconds": round(seconds, 1), "patients_per_s": round(s["patients_read"] / seconds),
            "driver_rss_mib": round(peak_rss_mib()), "tree_rss_mib": round(tree.peak)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", default="100000,1000000")
    ap.add_argument("--landmarks", default="24,48")
    ap.add_argument("--model", default="models:/severe-crs@champion")
    ap.add_argument("--bundle", default=None, help="a saved model folder (data/model) instead of --model")
    ap.add_argument("--engines", default="local,spark")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--patients-per-group", type=int, default=10_000)
    ap.add_argument("--driver-memory", default="4g")
    ap.add_argument("--repeat", type=int, default=1, help="runs per size and engine (report the best)")
    ap.add_argument("--workdir", default=None, help="cache simulated cohorts here (default: a temp dir)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    landmarks = [float(x) for x in args.landmarks.split(",")]
    if args.one:
        job = json.loads(args.one)
        print(json.dumps(run_one(job["engine"], Path(job["folder"]), args.model, args.bundle, landmarks,
                                 args.master, args.patients_per_group, args.driver_memory)))
        return
    from benchmarks.bench_features import cohort_dir

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = []
        for n in (int(x) for x in args.patients.split(",")):
            folder = cohort_dir(workdir, n)
            for engine in args.engines.split(","):
                runs = []
                for _ in range(args.repeat):
                    extra = ["--bundle", args.bundle] if args.bundle else ["--model", args.model]
                    runs.append(in_subprocess("benchmarks.bench_spark", "--landmarks", args.landmarks,
                                              "--master", args.master, "--driver-memory", args.driver_memory,
                                              "--patients-per-group", str(args.patients_per_group), *extra,
                                              "--one", json.dumps({"folder": str(folder), "engine": engine})))
                    print(json.dumps(runs[-1]), flush=True)
                rows.append(min(runs, key=lambda r: r["seconds"]) | {"runs": len(runs)})
        print(f"\nload average (1, 5, 15 min) after the runs: {os.getloadavg()} on {os.cpu_count()} cores")
        print_table(rows)


if __name__ == "__main__":
    main()
