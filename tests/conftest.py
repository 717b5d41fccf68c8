from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CRS_PROJECT_ROOT", str(ROOT))

MIX = {"axi-cel": 0.3, "tisa-cel": 0.3, "liso-cel": 0.1, "ide-cel": 0.1, "cilta-cel": 0.1,
       "blinatumomab": 0.1}


@pytest.fixture(scope="session")
def small_cohort():
    """A few hundred simulated patients, shared read-only by the tests."""
    from cohorts.simulate import iter_chunks

    return next(iter_chunks(400, seed=3, therapy_mix=MIX))


@pytest.fixture(scope="session")
def feature_params():
    from features.transformer import KineticFeatures

    return KineticFeatures(baseline_window_hours=(-168.0, 0.0), horizon_hours=72.0)


def lab_rows(patient: str, analyte: str, points: list[tuple[float, float]], resulted="draw") -> pd.DataFrame:
    """Tiny hand-made lab series: [(hours_since_infusion, value), ...].

    `resulted`: result times; "draw" (default) = each result known at its draw; None = no result
    time (the feature engine then assumes the analyte's turnaround).
    """
    hours = [float(t) for t, _ in points]
    if isinstance(resulted, str) and resulted == "draw":
        resulted = hours
    return pd.DataFrame({
        "patient_id": patient, "analyte": analyte,
        "hours_since_infusion": hours,
        "value": [float(v) for _, v in points], "censor": "",
        "resulted_hours": resulted if resulted is not None else np.nan,
        "source_row": np.arange(len(points)),
    })


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 (free port, temp backend and artifact store); stopped after."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    base = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    log = open(base / "server.log", "w")
    proc = subprocess.Popen(
        [mlflow_bin, "server", "--backend-store-uri", f"sqlite:///{base}/mlflow.db",
         "--artifacts-destination", str(base / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=base, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError("mlflow server exited:\n" + (base / "server.log").read_text()[-3000:])
    else:
        proc.kill()
        raise RuntimeError("mlflow server did not become healthy in 120 s")
    yield url
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """A local Spark session (`local[2]`, ~10-25 s to start) for the tests marked `spark`; stopped after.
    Few shuffle partitions: the test data are tiny."""
    pytest.importorskip("pyspark", reason="the Spark extra is not installed (pip install -e '.[spark]')")
    from scoring.spark import spark_session

    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    session = spark_session("local[2]", "crs-predict-tests", {
        "spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2",
        "spark.sql.warehouse.dir": str(warehouse), "spark.driver.memory": "1g",
        "spark.sql.adaptive.enabled": "false"})
    yield session
    session.stop()
