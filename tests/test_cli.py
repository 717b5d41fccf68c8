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


def _all_parsers():
    import argparse

    from pipeline.cli import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    todo = list(sub.choices.items())
    while todo:
        name, parser = todo.pop()
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend((f"{name} {n}", p) for n, p in action.choices.items())


def test_every_verb_has_a_description_and_every_option_its_help_and_default():
    """`crs VERB --help` tells what the verb does, what each option means and what happens without it."""
    import argparse

    from pipeline.cli import VERBS

    seen, problems = set(), []
    for name, parser in _all_parsers():
        seen.add(name.split()[0])
        if not (parser.description or "").strip():
            problems.append(f"{name}: no description")
        help_text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():
                problems.append(f"{name} {action.option_strings}: no help")
                continue
            flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
            if action.option_strings and not action.required and not flag:
                shown = parser._get_formatter()._get_help_string(action)  # what --help prints for it
                if "default" not in shown:
                    problems.append(f"{name} {action.option_strings}: help does not say its default")
        assert "(default: None)" not in help_text, name
    assert seen == set(VERBS)
    assert not problems, problems
