"""Simulator worlds, identity of simulated people, the additive world, and the ASSUMPTION ranges."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from cohorts import sim_realism
from cohorts.errors import CohortError
from cohorts.sim_world import assumption_nodes, check_assumption, draw_worlds
from cohorts.simulate import iter_chunks, load_simulator_params, write_simulated_cohort
from crs_settings import reference_dir
from tests.conftest import MIX

OUTCOME = ["patient_id", "therapy", "disease", "age_years", "crs_max_grade", "crs_onset_hours",
           "severe_onset_hours", "infection_onset_hours", "world"]


def _one(n: int, seed: int, **kw):
    return next(iter_chunks(n, seed=seed, therapy_mix=MIX, chunk_size=n, **kw))


def _sorted_labs(labs: pd.DataFrame) -> pd.DataFrame:
    return (labs.drop(columns="source_row").sort_values(["patient_id", "analyte", "hours_since_infusion"])
            .reset_index(drop=True))


# ----------------------------------------------------------------------------- ASSUMPTIONs

def test_every_assumption_in_simulator_yaml_has_a_range():
    """Parses simulator.yaml: each {assume, range} node holds its central value inside its range; no
    line calls a bare number an ASSUMPTION; every other number carries a source comment (or sits in an
    entry with a `source`)."""
    path = reference_dir() / "simulator.yaml"
    text = path.read_text()
    lines = text.splitlines()
    sp = yaml.safe_load(text)
    nodes = assumption_nodes(sp)
    assert len(nodes) > 150
    for p, node in nodes:
        check_assumption(p, node)
    bare: list[tuple[int, bool]] = []

    def walk(node, in_assume=False, has_source=False):
        if isinstance(node, yaml.MappingNode):
            keys = [k.value for k, _ in node.value]
            for _, v in node.value:
                walk(v, in_assume or "assume" in keys, "source" in keys)
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                walk(v, in_assume, has_source)
        elif node.tag.endswith(("int", "float")) and not in_assume:
            bare.append((node.start_mark.line, has_source))

    walk(yaml.compose(text))
    no_source = [i + 1 for i, src in bare if "#" not in lines[i] and not src]
    assert not no_source, f"numbers without a source comment on lines {no_source}"
    unranged = [i + 1 for i, _ in bare if "ASSUMPTION" in lines[i].split("#", 1)[-1] and "assume:" not in lines[i]]
    assert not unranged, f"ASSUMPTION without a range on lines {unranged}"


def test_an_assumption_without_a_range_is_refused():
    with pytest.raises(CohortError, match="no range"):
        check_assumption("x", {"assume": 0.5})
    with pytest.raises(CohortError, match="not inside"):
        check_assumption("x", {"assume": 0.9, "range": [0.1, 0.5]})


# ----------------------------------------------------------------------------- worlds

def test_randomised_worlds_are_reproducible_from_the_seed(tmp_path):
    """Same seed: the same worlds and the same bytes on disk; another world seed: other worlds."""
    digests = []
    for run in ("a", "b"):
        write_simulated_cohort(tmp_path / run, 300, seed=17, therapy_mix=MIX, chunk_size=120)
        digests.append({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted((tmp_path / run).iterdir())})
    assert digests[0] == digests[1]
    prov = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert [w["id"] for w in prov["worlds"]] == [f"w{i}" for i in range(8)]
    one, other = draw_worlds(8, world_seed=17), draw_worlds(8, world_seed=18)
    assert [w.drawn for w in one] == [w.record()["values"] for w in one] == [w["values"] for w in prov["worlds"]]
    assert one[0].drawn != one[1].drawn and one[0].drawn != other[0].drawn
    lo_hi = {p: node["range"] for p, node in assumption_nodes(load_simulator_params())}
    for w in one:
        for p, value in w.drawn.items():
            r = lo_hi[p]
            pairs = zip(value, r, strict=True) if isinstance(value, list) else [(value, r)]
            assert all(lo - 1e-12 <= v <= hi + 1e-12 for v, (lo, hi) in pairs), p


def test_central_world_and_one_fixed_world():
    central = _one(200, 4, randomise=False)
    assert set(central.patients["world"]) == {"central"}
    w = draw_worlds(1, world_seed=99)
    train, test = _one(150, 1, worlds=w), _one(300, 2, worlds=w)
    assert set(train.patients["world"]) == set(test.patients["world"]) == {"w0"}
    assert not set(train.patients["patient_id"]) & set(test.patients["patient_id"])
    additive = _one(100, 1, world="additive")
    assert set(additive.patients["world_kind"]) == {"additive"}


# ----------------------------------------------------------------------------- identity

def test_same_seed_same_people_whatever_the_measurement_settings():
    """SIM-<seed>-<index> is a person: changing the site mix (measurement) keeps every id, outcome and
    host factor; the labs change."""
    a = _one(1500, 21)
    b = _one(1500, 21, site_mix={"research": 0.1, "send_out": 0.1, "community": 0.8})
    pd.testing.assert_frame_equal(a.patients[OUTCOME], b.patients[OUTCOME])
    pd.testing.assert_frame_equal(a.grades, b.grades)
    assert (a.patients["site"] != b.patients["site"]).any()
    assert len(a.labs) != len(b.labs)


def test_chunk_size_never_changes_the_cohort():
    """Streaming invariance: 2,500 patients in one chunk or in chunks of 700 (across generator blocks)."""
    whole = _one(2500, 8)
    parts = list(iter_chunks(2500, seed=8, therapy_mix=MIX, chunk_size=700))
    assert [len(p.patients) for p in parts] == [700, 700, 700, 400]
    for name in ("patients", "events", "grades"):
        pd.testing.assert_frame_equal(getattr(whole, name),
                                      pd.concat([getattr(p, name) for p in parts], ignore_index=True))
    pd.testing.assert_frame_equal(_sorted_labs(whole.labs), _sorted_labs(pd.concat([p.labs for p in parts])))
    assert pd.concat([p.labs for p in parts])["source_row"].is_unique


# ----------------------------------------------------------------------------- the additive world

def _post_infusion_values(cohort, analyte: str, landmark: float) -> tuple[np.ndarray, np.ndarray]:
    """log(latest post-infusion value available at L), log(baseline) and the label, for eligible patients
    with both (a patient whose latest value is the baseline itself is left out)."""
    labs = cohort.labs[cohort.labs["analyte"] == analyte]
    label = sim_realism.landmark_labels(cohort.patients, landmark)
    vals = sim_realism.available_values(labs, landmark).set_index("patient_id")
    post = labs[(labs["hours_since_infusion"] > 0) & (labs["hours_since_infusion"] <= landmark)
                & (labs["resulted_hours"].isna() | (labs["resulted_hours"] <= landmark))]["patient_id"].unique()
    d = vals.join(label, how="inner").dropna(subset=["latest", "baseline"])
    d = d[d.index.isin(post)]
    return np.log(d[["latest", "baseline"]].to_numpy()), d["label"].to_numpy()


def _baseline_effect(kind: str) -> dict[str, float]:
    """Logistic models of the later grade >=3 label (IFN-γ at 48 h, research site, one fixed site world,
    8,000 patients) on log latest alone and on log latest + log baseline: the likelihood-ratio statistic
    of adding the baseline and the baseline coefficient with its 95% Wald interval."""
    from sklearn.linear_model import LogisticRegression

    worlds = draw_worlds(1, world_seed=11, kind=kind)
    mix = dict.fromkeys(load_simulator_params()["therapies"], 1.0)
    cohort = next(iter_chunks(8000, 1, mix, chunk_size=8000, site_mix={"research": 1.0}, worlds=worlds))
    x, y = _post_infusion_values(cohort, "IFNG", 48.0)
    assert y.sum() > 150

    def fit(cols):
        model = LogisticRegression(C=np.inf, max_iter=1000).fit(x[:, cols], y)
        p = model.predict_proba(x[:, cols])[:, 1]
        design = np.column_stack([np.ones(len(y)), x[:, cols]])
        cov = np.linalg.inv(design.T @ (design * (p * (1 - p))[:, None]))
        return model.coef_[0], np.sqrt(np.diag(cov))[1:], np.sum(np.where(y == 1, np.log(p), np.log1p(-p)))

    (_, base), (_, se), ll_both = fit([0, 1])
    *_, ll_alone = fit([0])
    return {"lr": 2 * (ll_both - ll_alone), "coef": base, "lo": base - 1.96 * se, "hi": base + 1.96 * se}


def test_additive_world_makes_the_baseline_irrelevant():
    """Default world: adding the patient's own baseline to the latest value clearly improves the model
    (likelihood ratio >> 3.84; negative baseline coefficient: the fold change carries risk). Additive
    world: it does not (LR < 3.84, the coefficient's 95% CI covers 0). One site world each: across site
    worlds a baseline would also cancel each site's assay-platform offset, a measurement effect."""
    default, additive = _baseline_effect("default"), _baseline_effect("additive")
    assert default["lr"] > 3.84 and default["hi"] < 0, default
    assert additive["lr"] < 3.84 and additive["lo"] <= 0 <= additive["hi"], additive


# ----------------------------------------------------------------------------- scoreable "other"

def test_other_product_is_simulated_and_featurised(feature_params):
    c = next(iter_chunks(200, seed=3, therapy_mix={"other": 1.0}))
    assert set(c.patients["therapy"]) == {"other"} and set(c.patients["disease"]) == {"other"}
    matrix = feature_params.build(c.labs, c.patients, [24.0, 48.0], c.events)
    assert len(matrix) == 2 * len(c.patients)


def test_realism_report_on_a_cohort_without_simulator_columns(small_cohort):
    """A real cohort has no site/world/indication columns: one site world 'all/all', no crash."""
    patients = small_cohort.patients.drop(columns=["site", "world", "world_kind", "indication"])
    table = sim_realism.realism_table(small_cohort.labs, patients, (48.0,))
    assert set(table["site"]) == {"all"} and set(table["world"]) == {"all"}
    assert table["auroc"].notna().any()
