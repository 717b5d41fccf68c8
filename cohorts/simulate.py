"""Literature-grounded synthetic cohort simulator: the embedded default data.

Mechanism first: a latent inflammation score drives grade, onset, treatments and the analyte
kinetics (:mod:`cohorts.sim_course`, :mod:`cohorts.sim_labs`); measurement follows each site's
panel. Streams patient chunks to Parquet so 1,000,000 patients never sit in memory at once.
Deterministic for (params, seed). The output is SYNTHETIC and says so in provenance.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cohorts.errors import CohortError
from cohorts.io import Cohort
from cohorts.registry import analyte_registry
from cohorts.schema import canonical_events
from cohorts.sim_course import latent_distribution, observed_tables, simulate_course
from cohorts.sim_labs import simulate_labs
from crs_settings import reference_dir

__all__ = ["latent_distribution", "load_simulator_params", "iter_chunks", "write_simulated_cohort",
           "SimulatedChunk"]


def load_simulator_params(path: Path | None = None) -> dict[str, Any]:
    with open(path or reference_dir() / "simulator.yaml") as fh:
        return yaml.safe_load(fh)


@dataclass
class SimulatedChunk(Cohort):
    grades: pd.DataFrame | None = None


def default_site_mix(sp: dict[str, Any]) -> dict[str, float]:
    return {name: float(site["weight"]) for name, site in sp["sites"].items()}


def iter_chunks(n_patients: int, seed: int, therapy_mix: dict[str, float], chunk_size: int = 20_000,
                sp: dict[str, Any] | None = None, site_mix: dict[str, float] | None = None
                ) -> Iterator[SimulatedChunk]:
    """Yield the cohort in patient chunks; chunk k is seeded from (seed, k), so output is deterministic."""
    if n_patients < 0:
        raise CohortError(f"--patients must be >= 0; got {n_patients}")
    if chunk_size < 1:
        raise CohortError(f"chunk size must be >= 1; got {chunk_size}")
    sp = sp or load_simulator_params()
    site_mix = site_mix or default_site_mix(sp)
    unknown_sites = [s for s in site_mix if s not in sp["sites"]]
    if unknown_sites:
        raise CohortError(f"simulate.site_mix names sites without a panel profile: {unknown_sites}")
    limits = analyte_registry()[["lloq", "uloq"]]
    n_chunks = max(1, -(-n_patients // chunk_size))
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)
    lab_offset = 0
    for k in range(n_chunks):
        first = k * chunk_size
        n = max(0, min(chunk_size, n_patients - first))
        rng = np.random.default_rng(seeds[k])
        course = simulate_course(rng, n, first, therapy_mix, site_mix, sp)
        patients, events, grades = observed_tables(course, sp)
        labs = simulate_labs(rng, course, sp, limits)
        labs["source_row"] += lab_offset
        lab_offset += len(labs)
        yield SimulatedChunk(labs=labs, patients=patients, events=canonical_events(events), grades=grades)


def provenance(n_patients: int, seed: int, therapy_mix: dict[str, float],
               site_mix: dict[str, float] | None = None) -> dict[str, Any]:
    sp = load_simulator_params()
    return {"synthetic": True, "source": "simulated", "simulator_version": sp["version"],
            "seed": seed, "patients": n_patients, "therapy_mix": therapy_mix,
            "site_mix": site_mix or default_site_mix(sp),
            "notice": "SYNTHETIC cohort from crs-predict's simulator; no clinical validity."}


def write_simulated_cohort(out: Path | str, n_patients: int, seed: int, therapy_mix: dict[str, float],
                           chunk_size: int = 20_000, site_mix: dict[str, float] | None = None,
                           progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Stream the simulated cohort to Parquet, one row group per chunk; return row counts.
    `progress` (optional) is called with the number of patients of each chunk written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = ("labs", "patients", "events", "grades")
    writers: dict[str, pq.ParquetWriter] = {}
    counts = dict.fromkeys(names, 0)
    try:
        for chunk in iter_chunks(n_patients, seed, therapy_mix, chunk_size, site_mix=site_mix):
            for name in names:
                frame = getattr(chunk, name)
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(out / f"{name}.parquet", table.schema)
                writers[name].write_table(table.cast(writers[name].schema))
                counts[name] += len(frame)
            if progress is not None:
                progress(len(chunk.patients))
    finally:
        for w in writers.values():
            w.close()
    prov = provenance(n_patients, seed, therapy_mix, site_mix) | {"rows": counts}
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True))
    return counts
