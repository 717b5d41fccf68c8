"""Stage `explain`: SHAP values of the final model (TreeSHAP for trees, exact linear contributions
for the linear family) — beeswarm, bar, mean |SHAP| table, dependence plots
of the top features, waterfalls of three example rows labelled by letter (no patient identifiers)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

HELP = "SHAP values, beeswarm/bar/dependence/waterfall plots, mean |SHAP| table (DVC stage)"


def configure(p: argparse.ArgumentParser) -> None:
    p.description = ("Reads params.yaml `explain`, the model folder (paths.model) and the feature matrix "
                     "(paths.features); writes paths.explain.")


def explain() -> pd.DataFrame:
    import shutil

    import pandas as pd

    from models.bundle import ModelBundle
    from models.explain import (
        explain_rows,
        mean_abs_shap,
        plot_bar,
        plot_beeswarm,
        plot_dependence,
        plot_waterfalls,
    )
    from pipeline.common import path_of, stage_context

    root, p = stage_context("explain")
    x = p["explain"]
    bundle = ModelBundle.load(path_of(root, p, "model"))
    matrix = pd.read_parquet(path_of(root, p, "features"))
    rows = matrix[matrix["eligible"]]
    n = min(len(rows), int(x["max_rows"]))
    rows = rows.sample(n=n, random_state=int(x["seed"])) if n < len(rows) else rows
    values, base, X = explain_rows(bundle, rows)
    out = path_of(root, p, "explain")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    table = mean_abs_shap(values, list(X.columns))
    table.to_csv(out / "mean_abs_shap.csv", index=False)
    plot_beeswarm(values, X, str(out / "shap_beeswarm.png"), seed=int(x["seed"]))
    plot_bar(values, X, str(out / "shap_bar.png"))
    plot_dependence(values, X, table["feature"].head(int(x["dependence_top"])).tolist(), str(out))
    plot_waterfalls(values, X, base, str(out))
    return table


def run(args: argparse.Namespace) -> int:
    top = explain().head(5)
    print("top drivers (mean |SHAP|):\n" + top[["label", "mean_abs_shap"]].to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["explain", *(sys.argv[1:] if argv is None else argv)], only="explain")


if __name__ == "__main__":
    raise SystemExit(main())
