"""`crs models list | show | promote | rollback`: thin over MlflowClient, on the project's tracking
URI (MLFLOW_TRACKING_URI wins)."""

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

    from cohorts.errors import CohortError
    from models.registry import alias_version, client_for, list_versions, rollback, set_champion
    from pipeline.common import configuration

    r = configuration()["register"]
    name = args.name or r["model_name"]
    alias = args.alias or r["champion_alias"]
    client, uri = client_for()
    try:
        client.get_registered_model(name)
    except Exception as exc:  # RestException when the model does not exist
        raise CohortError(f"No registered model {name!r} at {uri}; run `make run` (dvc repro) first") from exc
    if args.action == "list":
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(list_versions(client, name).to_string(index=False))
    elif args.action == "show":
        version = args.version or alias_version(client, name, alias)
        if version is None:
            raise CohortError(f"Model {name!r} has no alias {alias!r}")
        mv = client.get_model_version(name, version)
        run_ = client.get_run(mv.run_id)
        print(f"{name} version {mv.version}  aliases: {', '.join(mv.aliases) or '-'}  source: {mv.source}")
        for key in sorted(run_.data.tags):
            if not key.startswith("mlflow."):
                print(f"  tag    {key} = {run_.data.tags[key]}")
        for key in sorted(k for k in run_.data.metrics if k.startswith("pooled.xgb_kinetics.")):
            print(f"  metric {key} = {run_.data.metrics[key]:.4f}")
    elif args.action == "promote":
        if not args.version:
            raise CohortError("promote needs --version (see `crs models list`)")
        client.get_model_version(name, args.version)
        set_champion(client, name, str(args.version), alias)
        print(f"{name}: alias {alias} -> version {args.version} (promoted by hand)")
    elif args.action == "rollback":
        version = rollback(client, name, alias)
        print(f"{name}: alias {alias} rolled back to version {version}")
    return 0
