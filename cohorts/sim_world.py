"""Simulator worlds: one resolved parameter set per site, drawn from the ASSUMPTION ranges.

In ``data/reference/simulator.yaml`` every number without a public source is written
``{assume: <central>, range: [lo, hi]}`` (optionally ``scale: log``). A *world* replaces each
such node by one value: the central value (``randomise=False``) or a draw from its range. Each
draw is keyed by (world seed, world index, parameter path), so adding or removing a parameter
never changes the others, and the same seed always gives the same worlds (same bytes).

Two kinds of world share every number and differ in one mechanism:

- ``default``: multiplicative, baseline-relative response. Each analyte's post-infusion level is
  the patient's own pre-infusion set point times a fold change driven by T-cell activation, so
  the fold change against the patient's baseline carries the activation signal.
- ``additive``: the central claim is false by construction. The patient's pre-infusion value is
  biologically irrelevant (independent of everything after infusion and of the outcome); after
  infusion, an absolute amount driven by activation is added to a post-infusion set point, so risk
  follows absolute levels and a fold change against baseline carries nothing beyond them. (Pooled
  over several site worlds, a baseline still cancels each site's assay-platform offset: a
  measurement effect, which a test of the biology avoids by using one site world.)

Measurement parameters of a site world include one assay-platform offset per site profile and
analyte (``platform_z``, standard normals scaled by ``measurement.platform_offset_log_sd``).
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cohorts.errors import CohortError
from crs_settings import reference_dir

WORLD_KINDS = ("default", "additive")


def load_simulator_params(path: Path | None = None) -> dict[str, Any]:
    """data/reference/simulator.yaml as written (assumptions unresolved)."""
    with open(path or reference_dir() / "simulator.yaml") as fh:
        return yaml.safe_load(fh)


@dataclass(frozen=True)
class World:
    """One resolved parameter set (a site world). ``params`` has no ``assume`` nodes left."""

    id: str
    kind: str
    index: int
    seed: int | None
    randomised: bool
    params: dict[str, Any] = field(repr=False)
    drawn: dict[str, Any] = field(repr=False)
    platform_z: dict[str, float] = field(default_factory=dict, repr=False)

    def record(self) -> dict[str, Any]:
        """JSON-ready description for provenance.json."""
        return {"id": self.id, "kind": self.kind, "index": self.index, "seed": self.seed,
                "randomised": self.randomised, "values": self.drawn,
                "platform_offset_z": self.platform_z}

    def platform_offset(self, site: str, analyte: str) -> float:
        """Natural-log assay-platform offset of this site world for an analyte (0 in a central world)."""
        m = self.params["measurement"]["platform_offset_log_sd"]
        group = next((g for g, key in (("cytokine", "cytokine_analytes"), ("research", "research_analytes"),
                                       ("routine", "routine_analytes")) if analyte in self.params[key]), None)
        if group is None:
            return 0.0
        return float(m[group]) * self.platform_z.get(f"{site}.{analyte}", 0.0)


def is_assumption(node: Any) -> bool:
    return isinstance(node, dict) and "assume" in node


def assumption_nodes(tree: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every ``{assume: ..., range: ...}`` node with its dotted path, in file order."""
    if is_assumption(tree):
        return [(path, tree)]
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += assumption_nodes(value, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out += assumption_nodes(value, f"{path}[{i}]")
    return out


def check_assumption(path: str, node: dict[str, Any]) -> None:
    """An assumption needs a range that contains its central value (element-wise for lists)."""
    if "range" not in node:
        raise CohortError(f"simulator.yaml: ASSUMPTION {path} has no range")
    central, rng = node["assume"], node["range"]
    pairs = list(zip(central, rng, strict=True)) if isinstance(central, list) else [(central, rng)]
    for c, r in pairs:
        if not (isinstance(r, list) and len(r) == 2 and r[0] <= c <= r[1]):
            raise CohortError(f"simulator.yaml: ASSUMPTION {path} = {central} is not inside its range {rng}")
        if node.get("scale") == "log" and r[0] <= 0:
            raise CohortError(f"simulator.yaml: ASSUMPTION {path} has a log scale but a range reaching {r[0]}")


def _unit(world_seed: int, index: int, path: str, k: int) -> float:
    """One U(0,1) number keyed by (world seed, world index, parameter path, element)."""
    ss = np.random.SeedSequence([int(world_seed) & 0xFFFFFFFF, int(world_seed) >> 32, int(index),
                                 zlib.crc32(path.encode()), k])
    return float(np.random.Generator(np.random.PCG64(ss)).random())


def _value(node: dict[str, Any], u: list[float] | None) -> Any:
    central, rng = node["assume"], node["range"]
    if u is None:
        return copy.deepcopy(central)
    log = node.get("scale") == "log"

    def one(r: list[float], x: float) -> float:
        if log:
            return float(np.exp(np.log(r[0]) + x * (np.log(r[1]) - np.log(r[0]))))
        return float(r[0] + x * (r[1] - r[0]))

    if isinstance(central, list):
        return sorted(one(r, x) for r, x in zip(rng, u, strict=True))  # an interval stays ordered
    return one(rng, u[0])


def _resolve(tree: Any, path: str, draw: Any, drawn: dict[str, Any]) -> Any:
    if is_assumption(tree):
        value = draw(path, tree)
        drawn[path] = value
        return value
    if isinstance(tree, dict):
        return {k: _resolve(v, f"{path}.{k}" if path else str(k), draw, drawn) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_resolve(v, f"{path}[{i}]", draw, drawn) for i, v in enumerate(tree)]
    return tree


def resolve_world(sp: dict[str, Any], world_seed: int | None = None, index: int = 0, kind: str = "default",
                  randomise: bool = True) -> World:
    """One world: every assumption at its central value, or drawn from its range."""
    if kind not in WORLD_KINDS:
        raise CohortError(f"simulate.world must be one of {list(WORLD_KINDS)}; got {kind!r}")
    for path, node in assumption_nodes(sp):
        check_assumption(path, node)
    if randomise and world_seed is None:
        raise CohortError("a randomised world needs a world seed")
    if randomise and world_seed < 0:
        raise CohortError(f"world seed must be >= 0; got {world_seed}")

    def draw(path: str, node: dict[str, Any]) -> Any:
        if not randomise:
            return _value(node, None)
        k = len(node["assume"]) if isinstance(node["assume"], list) else 1
        return _value(node, [_unit(world_seed, index, path, j) for j in range(k)])

    drawn: dict[str, Any] = {}
    params = _resolve(sp, "", draw, drawn)
    platform_z: dict[str, float] = {}
    if randomise:  # one offset per site profile and measured analyte (standard normal, scaled by the group's SD)
        from scipy.special import ndtri

        for site in params["sites"]:
            for analyte in (*params["routine_analytes"], *params["cytokine_analytes"], *params["research_analytes"]):
                key = f"{site}.{analyte}"
                platform_z[key] = round(float(ndtri(_unit(world_seed, index, f"platform_offset.{key}", 0))), 6)
    prefix = "additive-" if kind == "additive" else ""
    wid = f"{prefix}w{index}" if randomise else f"{prefix}central"
    return World(id=wid, kind=kind, index=index, seed=world_seed if randomise else None,
                 randomised=randomise, params=params, drawn=drawn, platform_z=platform_z)


def draw_worlds(n_worlds: int, world_seed: int, kind: str = "default", randomise: bool = True,
                sp: dict[str, Any] | None = None) -> list[World]:
    """``n_worlds`` site worlds drawn from the ranges (seeded); ``randomise=False``: one central world."""
    sp = sp if sp is not None else load_simulator_params()
    if not randomise:
        return [resolve_world(sp, None, 0, kind, randomise=False)]
    if n_worlds < 1:
        raise CohortError(f"need at least one world; got {n_worlds}")
    return [resolve_world(sp, world_seed, i, kind, randomise=True) for i in range(n_worlds)]
