"""The shape of the code: one-way layers, an honest DVC graph, defaults written once.

Static checks over the source (AST imports, dvc.yaml), so each can fail on a single stray import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("crs_settings", "cohorts", "features", "models", "scoring", "reports", "pipeline")
LIBRARIES = ("cohorts", "features", "models", "scoring", "reports")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


MODULES = _modules()


def imports_of(path: Path) -> set[str]:
    """Project modules imported anywhere in the file (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in PACKAGES:
                while name and name not in MODULES:
                    name = name.rpartition(".")[0]
                if name:
                    found.add(name)
    return found


def closure(start: str, stop: frozenset[str] = frozenset()) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        if mod not in stop:
            todo.extend(imports_of(MODULES[mod]) - seen)
    return seen


def test_the_import_scanner_sees_function_level_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from pipeline.common import parse_landmarks\n    import models.train\n")
    assert {"pipeline.common", "models.train"} <= imports_of(probe)


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_never_import_the_pipeline(library):
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imports_of(p) if m.startswith("pipeline"))
                 for name, p in MODULES.items() if name.split(".")[0] == library}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_settings_module_imports_no_project_code():
    for name, path in MODULES.items():
        if name.startswith("crs_settings"):
            assert imports_of(path) <= {m for m in MODULES if m.startswith("crs_settings")}, name


def test_models_hold_no_batch_serving_io():
    assert not [m for m in MODULES if m == "models.scoring"]
    for name, path in MODULES.items():
        if name.startswith("models."):
            assert not {m for m in imports_of(path) if m.startswith("scoring")}, name


def test_no_import_cycles_between_modules():
    graph = {m: imports_of(p) - {m} for m, p in MODULES.items()}
    cycles = []
    for m in graph:
        for n in graph[m]:
            if m in closure(n) and not (m.endswith("cli") or n.endswith("cli")):
                cycles.append(tuple(sorted((m, n))))
    # the stage modules' `main` re-enters the CLI on purpose (python -m pipeline.<stage>); nothing else cycles
    assert not sorted(set(cycles))


def _stage_module(cmd: str) -> str:
    word = cmd.split()[2]  # python -m pipeline.<stage> ...
    assert word.startswith("pipeline."), cmd
    return word


def test_every_dvc_stage_depends_on_the_code_it_runs():
    """Each stage lists its own module, the CLI plumbing, every library package its module reaches
    (whole folders) and, when it reaches the analyte registry, data/reference/analytes.csv."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages
    for name, stage in stages.items():
        module = _stage_module(stage["cmd"])
        deps = set(stage["deps"])
        reached = closure(module, stop=frozenset({"pipeline.cli"}))
        needed = {str(MODULES[m].relative_to(ROOT)) for m in reached if m.startswith("pipeline")}
        needed |= {m.split(".")[0] for m in reached if not m.startswith("pipeline")}
        if "cohorts.registry" in closure(module):
            needed.add("data/reference/analytes.csv")
        covered = {d for d in needed if d in deps or any(d.startswith(f"{x}/") for x in deps)}
        assert needed == covered, f"stage {name} misses deps {sorted(needed - covered)}"
        assert not stage.get("always_changed"), f"stage {name} reruns on every dvc repro"


def test_transformer_defaults_are_the_params_defaults():
    """One default: the transformer built from params.yaml equals the transformer's own defaults."""
    from crs_settings import load_params
    from features.transformer import KineticFeatures

    from_params = KineticFeatures.from_params(load_params(ROOT)["featurize"]).get_params()
    defaults = KineticFeatures().get_params()
    differ = {k: (from_params[k], defaults[k]) for k in defaults if from_params[k] != defaults[k]}
    assert not differ


def test_outside_a_project_no_folder_becomes_one(tmp_path, monkeypatch):
    import crs_settings

    monkeypatch.delenv("CRS_PROJECT_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert crs_settings.project_root() is None
    assert crs_settings.tracking_uri() is None
    assert crs_settings.load_params()["simulate"]["therapy_mix"]  # the packaged defaults
    with pytest.raises(crs_settings.InputProblem, match="MLFLOW_TRACKING_URI"):
        crs_settings.require_tracking_uri()
    (tmp_path / "sub").mkdir()
    for marker in crs_settings.MARKERS:
        (tmp_path / marker).write_text("{}\n")
    assert crs_settings.project_root(tmp_path / "sub") == tmp_path
