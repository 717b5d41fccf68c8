"""Stage `simulate`: write the SYNTHETIC default cohort (labs, patients, events, grades Parquet).

Therapy and site mixes, the chunk size and the worlds (`world`, `randomise`, `n_worlds`,
`world_seed`) come from params.yaml `simulate` (the project's, or the packaged defaults when run
outside a project: the command says which); --world and --central override two of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "write a SYNTHETIC cohort from the literature-grounded simulator (canonical Parquet tables)"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patients", type=int, required=True, help="number of simulated patients")
    p.add_argument("--seed", type=int, required=True,
                   help="random seed: the same seed and params give the same cohort, byte for byte")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (labs, patients, events, grades .parquet and provenance.json)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="patients per streamed chunk (default: params simulate.chunk_size); bounds memory, "
                        "never changes the cohort")
    p.add_argument("--world", choices=["default", "additive"], default=None,
                   help="default: baseline-relative response; additive: the patient's own baseline is "
                        "biologically irrelevant (default: params simulate.world)")
    p.add_argument("--central", action="store_true",
                   help="one world at the central value of every ASSUMPTION (params simulate.randomise: false)")


def simulate(patients: int, seed: int, out: Path, chunk_size: int | None = None, world: str | None = None,
             central: bool = False) -> dict[str, int]:
    """Written into a temporary sibling folder swapped in for `out` whole: a run killed while
    overwriting a cohort leaves the old cohort or the new one, never a mixture."""
    from cohorts.atomic import atomic_folder
    from cohorts.simulate import write_simulated_cohort
    from crs_settings.progress import Progress
    from pipeline.common import configuration

    sim = configuration()["simulate"]
    world_seed = sim.get("world_seed")
    with Progress(patients, unit="patients", desc="crs simulate") as bar, atomic_folder(out) as tmp:
        return write_simulated_cohort(tmp, patients, seed, dict(sim["therapy_mix"]),
                                      int(chunk_size or sim["chunk_size"]), site_mix=dict(sim["site_mix"]),
                                      world=str(world or sim.get("world", "default")),
                                      randomise=bool(sim.get("randomise", True)) and not central,
                                      worlds=None if world_seed is None else int(world_seed),
                                      n_worlds=int(sim.get("n_worlds", 8)), progress=bar.update)


def run(args: argparse.Namespace) -> int:
    counts = simulate(args.patients, args.seed, args.out, args.chunk_size, args.world, args.central)
    print(f"SYNTHETIC cohort written to {args.out}: {counts}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["simulate", *(sys.argv[1:] if argv is None else argv)], only="simulate")


if __name__ == "__main__":
    raise SystemExit(main())
