"""`crs models list | show | promote | rollback`: the registry on the project's tracking URI
(MLFLOW_TRACKING_URI wins). Registry problems (unknown model, version or alias, unreachable store,
missing model files) are one line and exit code 2; changes are journaled and serialised
(models/registry.py)."""

from __future__ import annotations

import argparse

HELP = "the model registry: list | show | promote | rollback"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "show", "promote", "rollback"],
                   help="list versions; show one (default: the champion); promote a version by hand; "
                        "roll the champion back to the previous one")
    p.add_argument("--name", default=None, help="registered model name (default: params register.model_name)")
    p.add_argument("--version", default=None, help="version for show / promote (default: the alias's version)")
    p.add_argument("--alias", default=None,
                   help="alias for show / promote / rollback (default: params register.champion_alias)")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from models.registry import Registry, RegistryError
    from pipeline.common import configuration

    r = configuration()["register"]
    name = args.name or r["model_name"]
    alias = args.alias or r["champion_alias"]
    registry = Registry.open(name, settings=r, must_exist=True)
    registry.require_model()
    state = registry.state(alias)  # checks the alias against its history; repairs an interrupted change
    if state.repaired:
        print(f"repaired: {state.repaired}")
    if args.action == "list":
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(registry.table(alias).to_string(index=False))
        print(f"{alias} history: {','.join(state.history) or '-'}")
    elif args.action == "show":
        version = args.version or registry.require_alias(alias)
        mv = registry.version(version)
        run_ = registry.call("reading the version's run", registry.client.get_run, mv.run_id) if mv.run_id else None
        print(f"{name} version {mv.version}  aliases: {', '.join(mv.aliases) or '-'}  source: {mv.source}")
        for key in sorted(mv.tags or {}):
            print(f"  version tag {key} = {mv.tags[key]}")
        if run_ is not None:
            for key in sorted(run_.data.tags):
                if not key.startswith("mlflow."):
                    print(f"  run tag     {key} = {run_.data.tags[key]}")
            for key in sorted(run_.data.metrics):
                print(f"  metric      {key} = {run_.data.metrics[key]:.4f}")
    elif args.action == "promote":
        if not args.version:
            raise RegistryError("promote needs --version (see `crs models list`)")
        gate = (registry.version(args.version).tags or {}).get("gate.decision", "")
        after = registry.promote(str(args.version), alias)
        print(f"{name}: alias {alias} -> version {after.version} (promoted by hand; history {','.join(after.history)})")
        if gate == "refused":
            print(f"note: version {after.version} was refused by the promotion gates (see `crs models show "
                  f"--version {after.version}`); `crs models rollback` undoes this")
    elif args.action == "rollback":
        version = registry.rollback(alias)
        print(f"{name}: alias {alias} rolled back to version {version}")
    return 0
