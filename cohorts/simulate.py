"""Literature-grounded synthetic cohort simulator: the embedded default data (SYNTHETIC, no clinical validity).

Biology first, clinic second, measurement last (:mod:`cohorts.sim_course`, :mod:`cohorts.sim_labs`);
every assumption is drawn per site world from its range (:mod:`cohorts.sim_world`). Streams patient
chunks to Parquet so 1,000,000 patients never sit in memory at once.

API (what other code should call)::

    from cohorts.simulate import iter_chunks, write_simulated_cohort, draw_worlds, load_simulator_params

    # the default: a mixture of 8 randomised site worlds drawn from the ranges (world seed = seed)
    chunks = iter_chunks(5000, seed=1, therapy_mix={"axi-cel": 1.0})
    # the world where the central claim is false (baseline biologically irrelevant)
    chunks = iter_chunks(5000, seed=1, therapy_mix=mix, world="additive")
    # central values only (simulate.randomise: false)
    chunks = iter_chunks(5000, seed=1, therapy_mix=mix, randomise=False)
    # ONE fixed site world: draw it once, then any number of cohorts from it
    w = draw_worlds(1, world_seed=42)                 # or draw_worlds(8, 42)[3:4]; kind="additive" too
    train = iter_chunks(200, seed=1, therapy_mix=mix, worlds=w, site_mix={"research": 1.0})
    test = iter_chunks(20_000, seed=2, therapy_mix=mix, worlds=w, site_mix={"research": 1.0})

``worlds`` is an int (world seed), a list of :class:`cohorts.sim_world.World`, or None (world seed =
``seed``, ``n_worlds`` worlds). A patient is named ``SIM-<seed>-<index>`` and is the same person
(host factors, course, outcome) whatever the chunk size and whatever the measurement settings
(site mix, panels, turnaround, missingness): biology and measurement draw from independent
streams (:mod:`cohorts.sim_random`). Deterministic for (params, seed, worlds).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cohorts.errors import CohortError
from cohorts.io import Cohort
from cohorts.registry import analyte_registry
from cohorts.schema import canonical_events
from cohorts.sim_course import calibration, latent_distribution, observed_tables, simulate_course
from cohorts.sim_labs import assign_sites, simulate_labs
from cohorts.sim_random import PatientRandom
from cohorts.sim_world import WORLD_KINDS, World, draw_worlds, load_simulator_params

__all__ = ["DEFAULT_N_WORLDS", "SimulatedChunk", "World", "draw_worlds", "iter_chunks", "latent_distribution",
           "load_simulator_params", "provenance", "resolve_worlds", "write_simulated_cohort"]

DEFAULT_N_WORLDS = 8  # site worlds in the default mixture (params.yaml simulate.n_worlds)


@dataclass
class SimulatedChunk(Cohort):
    grades: pd.DataFrame | None = None


def default_site_mix(sp: dict[str, Any]) -> dict[str, float]:
    return {name: float(site["weight"]) for name, site in sp["sites"].items()}


def resolve_worlds(seed: int, world: str = "default", randomise: bool = True,
                   worlds: int | list[World] | None = None, n_worlds: int | None = None,
                   sp: dict[str, Any] | None = None) -> list[World]:
    """The site worlds a cohort is drawn from (see the module docstring for the forms of ``worlds``)."""
    if world not in WORLD_KINDS:
        raise CohortError(f"simulate.world must be one of {list(WORLD_KINDS)}; got {world!r}")
    if isinstance(worlds, list):
        if not worlds or not all(isinstance(w, World) for w in worlds):
            raise CohortError("worlds must be a non-empty list of World (from draw_worlds), a world seed, or None")
        return worlds
    world_seed = seed if worlds is None else int(worlds)
    return draw_worlds(n_worlds or DEFAULT_N_WORLDS, world_seed, kind=world, randomise=randomise, sp=sp)


def iter_chunks(n_patients: int, seed: int, therapy_mix: dict[str, float], chunk_size: int = 20_000,
                sp: dict[str, Any] | None = None, site_mix: dict[str, float] | None = None, *,
                world: str = "default", randomise: bool = True, worlds: int | list[World] | None = None,
                n_worlds: int | None = None) -> Iterator[SimulatedChunk]:
    """Yield the cohort in patient chunks; the output does not depend on ``chunk_size``."""
    for patients, events, grades, labs in _chunks(n_patients, seed, therapy_mix, chunk_size, sp, site_mix,
                                                  resolve_worlds(seed, world, randomise, worlds, n_worlds, sp)):
        yield SimulatedChunk(labs=labs.to_pandas(), patients=patients, events=events, grades=grades)


def _chunks(n_patients: int, seed: int, therapy_mix: dict[str, float], chunk_size: int,
            sp: dict[str, Any] | None, site_mix: dict[str, float] | None,
            world_list: list[World]) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Any]]:
    """(patients, events, grades, labs as an Arrow table) per chunk."""
    if n_patients < 0:
        raise CohortError(f"--patients must be >= 0; got {n_patients}")
    if chunk_size < 1:
        raise CohortError(f"chunk size must be >= 1; got {chunk_size}")
    if seed < 0:
        raise CohortError(f"--seed must be >= 0; got {seed}")
    if not therapy_mix or any(v < 0 for v in therapy_mix.values()) or sum(therapy_mix.values()) <= 0:
        raise CohortError(f"simulate.therapy_mix needs non-negative weights with a positive sum; got {therapy_mix}")
    sp = sp or load_simulator_params()
    site_mix = site_mix or default_site_mix(sp)
    unknown_sites = [s for s in site_mix if s not in sp["sites"]]
    if unknown_sites:
        raise CohortError(f"simulate.site_mix names sites without a panel profile: {unknown_sites}")
    unknown = [k for k in therapy_mix if k not in sp["therapies"]]
    if unknown:
        raise CohortError(f"simulate.therapy_mix names therapies the simulator does not know: {unknown}; "
                          f"known: {sorted(sp['therapies'])}")
    limits = analyte_registry()[["lloq", "uloq", "plausible_min", "plausible_max"]]
    cal = calibration(list(therapy_mix), world_list)
    n_chunks = max(1, -(-n_patients // chunk_size))
    lab_offset = 0
    for k in range(n_chunks):
        first = k * chunk_size
        n = max(0, min(chunk_size, n_patients - first))
        course = simulate_course(first, n, seed, therapy_mix, world_list, cal)
        rm = PatientRandom(seed, "measurement", first, n)
        course["site"] = assign_sites(rm, site_mix)
        patients, events, grades = observed_tables(course, world_list[0].params)
        labs = simulate_labs(course, world_list, rm, world_list[0].params, limits, lab_offset)
        lab_offset += labs.num_rows
        yield patients, canonical_events(events), grades, labs


def provenance(n_patients: int, seed: int, therapy_mix: dict[str, float],
               site_mix: dict[str, float] | None = None, world_list: list[World] | None = None,
               world: str = "default", randomise: bool = True) -> dict[str, Any]:
    sp = load_simulator_params()
    world_list = world_list or resolve_worlds(seed, world, randomise, sp=sp)
    return {"synthetic": True, "source": "simulated", "simulator_version": sp["version"],
            "seed": seed, "patients": n_patients, "therapy_mix": therapy_mix,
            "site_mix": site_mix or default_site_mix(sp),
            "world": "+".join(sorted({w.kind for w in world_list})),
            "randomise": all(w.randomised for w in world_list),
            "worlds": [w.record() for w in world_list],
            "patient_ids": f"SIM-{seed}-<index>: the same simulated person whatever the measurement settings",
            "notice": "SYNTHETIC cohort from crs-predict's simulator; no clinical validity."}


def write_simulated_cohort(out: Path | str, n_patients: int, seed: int, therapy_mix: dict[str, float],
                           chunk_size: int = 20_000, site_mix: dict[str, float] | None = None, *,
                           world: str = "default", randomise: bool = True,
                           worlds: int | list[World] | None = None, n_worlds: int | None = None,
                           progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Stream the simulated cohort to Parquet, one row group per chunk; return row counts.
    `progress` (optional) is called with the number of patients of each chunk written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world_list = resolve_worlds(seed, world, randomise, worlds, n_worlds)
    names = ("labs", "patients", "events", "grades")
    writers: dict[str, pq.ParquetWriter] = {}
    counts = dict.fromkeys(names, 0)
    try:
        for patients, events, grades, labs in _chunks(n_patients, seed, therapy_mix, chunk_size, None, site_mix,
                                                      world_list):
            for name, frame in (("labs", labs), ("patients", patients), ("events", events), ("grades", grades)):
                table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(out / f"{name}.parquet", table.schema)
                writers[name].write_table(table.cast(writers[name].schema))
                counts[name] += table.num_rows
            if progress is not None:
                progress(len(patients))
    finally:
        for w in writers.values():
            w.close()
    prov = provenance(n_patients, seed, therapy_mix, site_mix, world_list, world, randomise) | {"rows": counts}
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True))
    return counts
