import subprocess
import sys

from pipeline.cli import main


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("simulate", "featurize", "train", "evaluate", "explain", "register", "score"):
        assert cmd in out.stdout


def test_missing_cohort_is_exit_2_with_one_clear_message(tmp_path, capsys):
    code = main(["featurize", "--cohort", str(tmp_path / "missing"), "--landmarks", "24,48",
                 "--out", str(tmp_path / "f.parquet")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def test_bad_landmarks_is_exit_2(tmp_path, capsys):
    code = main(["featurize", "--cohort", str(tmp_path), "--landmarks", "a,b", "--out", str(tmp_path / "f")])
    assert code == 2 and "--landmarks" in capsys.readouterr().err


def test_simulate_then_featurize(tmp_path):
    assert main(["simulate", "--patients", "30", "--seed", "1", "--out", str(tmp_path / "c")]) == 0
    assert main(["featurize", "--cohort", str(tmp_path / "c"), "--landmarks", "24,48",
                 "--out", str(tmp_path / "f.parquet")]) == 0
    import pandas as pd

    matrix = pd.read_parquet(tmp_path / "f.parquet")
    assert len(matrix) == 60 and {"patient_id", "landmark_hours", "label"} <= set(matrix.columns)
