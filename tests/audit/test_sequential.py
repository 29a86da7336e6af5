"""The group-sequential design (audit/sequential.py) and its stages (audit/stages.py), proven by
simulation: deciding after every stage keeps false `reproduced` and false `not reproduced` at
5%, where the naive "test after every stage" (a fixed design's test at each look) does not.

Two levels of proof:
- the boundaries alone, on 400,000 fresh null sequences of t statistics (vectorised, seconds):
  the probability of ever crossing is 5% within 0.1 points for O'Brien-Fleming and Pocock
  spending, at most 5% for the union bound of unpaired (Welch) tests, and 10-11% for the naive
  repeated test;
- whole studies through `stages.progress` (the stages `audit run --until-decided` runs) and
  `verdict.decide`: claims true exactly on the edge of their tolerance, seeds added stage by
  stage only while the claim is undecided, naive beside corrected. A value claim runs by default
  (1000 studies; the corrected rates at most 5% by the binomial criterion of
  test_verdict_simulation.py, the naive ones significantly above); comparisons, equivalences
  (paired and Welch) and Pocock spending are marked slow (2000 studies each).
"""

from __future__ import annotations

import math
import types

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from audit import sequential, stages, verdict
from audit.plan import Inputs, plan, seed_grid
from audit.protocol import ProtocolError, parse
from audit.sequential import Design, nominal_boundary, repeated_p

LOOKS = (3, 5, 8)
TARGET, TOLERANCE, SD = 0.917, 0.01, 0.003  # as in test_verdict_simulation.py


def at_most_five_percent(count: int, studies: int) -> bool:
    """Not significantly above 5%: one-sided binomial test at 0.1% (test_verdict_simulation)."""
    return stats.binomtest(count, studies, 0.05, alternative="greater").pvalue > 1e-3


def make_protocol(claims: list[dict], frameworks=("torch",), seeds=5):
    """A protocol with these claims, every arm they name, and `seeds` seeds (as in
    test_verdict_simulation.py)."""
    named = [c[k] for c in claims for k in ("arm", "better", "worse") if k in c]
    arms = list(dict.fromkeys(named + [a for c in claims for a in c.get("arms", ())]))
    published = [{"id": f"paper-{c['id']}", "value": c["paper"], "setting": "paper",
                  "arm": c["arm"], "source": {"kind": "paper", "citation": "simulated"}}
                 for c in claims if c["kind"] == "value"]
    claims = [{"text": "simulated"} | c | ({"source": f"paper-{c['id']}"} if c["kind"] == "value"
                                           else {}) for c in claims]
    return parse({"version": 1, "name": "sim", "title": "simulated", "frameworks":
                  list(frameworks), "seeds": list(range(seeds)), "paper": {"title": "TransFG"},
                  "data": {"dataset": "digits", "root": "bundled"}, "model": {"preset": "tiny"},
                  "arms": {a: {} for a in arms}, "published": published, "claims": claims},
                 "simulated.toml")


def significantly_above_five_percent(count: int, studies: int) -> bool:
    return stats.binomtest(count, studies, 0.05, alternative="greater").pvalue < 1e-3


# ---------------------------------------------------------------------------- the boundaries

def null_crossings(design: Design, looks, sequences: int, seed: int, pivotal=True):
    """(corrected, naive): the share of null sequences (one-sample t at the looks) whose test
    ever rejects: at the design's boundaries, and at 5% at every look."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((sequences, looks[-1]))
    bounds = [nominal_boundary(design, looks[:j + 1], 0.05, pivotal) for j in range(len(looks))]
    corrected = np.zeros(sequences, dtype=bool)
    naive = np.zeros(sequences, dtype=bool)
    for j, n in enumerate(looks):
        sample = x[:, :n]
        t = sample.mean(axis=1) / (sample.std(axis=1, ddof=1) / math.sqrt(n))
        q = special.stdtr(n - 1, -t)
        corrected |= q < bounds[j]
        naive |= q < 0.05
    return corrected.mean(), naive.mean()


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
def test_the_boundaries_keep_the_chance_of_ever_crossing_at_five_percent(spending):
    # 400,000 sequences (another stream than the boundaries' own): SE 0.034 points
    design = Design(spending, LOOKS)
    corrected, naive = null_crossings(design, LOOKS, 400_000, seed=2024)
    assert 0.0485 < corrected <= 0.0507  # 5%, a little under (the boundaries' guard)
    assert 0.10 < naive < 0.115  # testing at 5% at each of 3 looks
    # O'Brien-Fleming spends almost nothing early; Pocock evenly
    first = nominal_boundary(design, LOOKS[:1], 0.05)
    assert first == pytest.approx(0.00137 if spending == "obrien-fleming" else 0.0249, rel=0.02)


def test_the_union_bound_for_unpaired_tests_never_exceeds_five_percent():
    # Welch's joint distribution depends on the spreads' ratio: each look on its own at the
    # alpha it may spend there; on t statistics (the worst correlation for the union bound is
    # none, so it is conservative here) it stays under 5%
    design = Design("obrien-fleming", LOOKS)
    corrected, _ = null_crossings(design, LOOKS, 200_000, seed=2025, pivotal=False)
    assert corrected <= 0.05
    assert nominal_boundary(design, LOOKS, 0.05, pivotal=False) < \
        nominal_boundary(design, LOOKS, 0.05)  # the price of not knowing the joint law


def test_repeated_p_values_match_the_boundaries_and_look_one_is_exact():
    design = Design("obrien-fleming", LOOKS)
    for j in range(3):
        looks = LOOKS[:j + 1]
        bound = nominal_boundary(design, looks, 0.05)
        assert repeated_p(design, looks, bound * 0.98) < 0.05 < repeated_p(design, looks,
                                                                           bound * 1.02)
    # look 1: f(t1; alpha) = nominal, in closed form
    t1 = 3 / 8
    q = float(design.spent(t1, 0.05))
    assert repeated_p(design, (3,), q) == pytest.approx(0.05, rel=1e-9)
    assert repeated_p(design, LOOKS, 1.0) == 1.0 and repeated_p(design, LOOKS, math.nan) == 1.0


def test_a_design_is_made_from_first_step_and_max_or_from_stages():
    assert Design.make("obrien-fleming", 8).stages == (3, 5, 7, 8)
    assert Design.make("pocock", 8, first=4, step=4).stages == (4, 8)
    assert Design.make("obrien-fleming", 5).stages == (3, 5)
    assert Design.make("obrien-fleming", 2).stages == (2,)
    assert Design.make("obrien-fleming", 6, stages=[3, 5, 8]).stages == (3, 5, 6)
    assert Design.make("obrien-fleming", 8, stages=[3, 5]).stages == (3, 5, 8)
    assert Design.make("obrien-fleming", 8, stages=[3, 5, 8]).stages == (3, 5, 8)
    assert Design.make("obrien-fleming", 8).looks(6) == [3, 5, 6]
    with pytest.raises(ValueError):
        Design("obrien-fleming", (3, 3))


# ----------------------------------------------------------------- whole studies, by stages

def rows_of(groups, seeds: int):
    """Stand-ins for runner Rows: every run of the groups done."""
    return [types.SimpleNamespace(run=types.SimpleNamespace(
        protocol="sim", arm=arm, framework=framework, seed_label=f"seed {s}",
        run_id=f"{arm}-{framework}-{s}"), state="done")
        for arm, framework in groups for s in range(seeds)]


class Studies:
    """Simulated studies decided stage by stage, as `audit run --until-decided` does."""

    def __init__(self, claims, groups, frameworks=("torch",), design=None):
        design = design or Design("obrien-fleming", LOOKS)
        self.protocol = make_protocol(claims, frameworks=frameworks, seeds=design.max_seeds)
        self.design = design
        self.rows = rows_of(groups, design.max_seeds)
        self.table = pd.DataFrame([{"protocol": "sim", "arm": r.run.arm,
                                    "framework": r.run.framework, "seed": r.run.seed_label,
                                    "run_id": r.run.run_id, "final_step": 100,
                                    "best_step": 100} for r in self.rows])

    def run(self, values: np.ndarray, naive: bool):
        """Each study's final verdicts and its progress (looks)."""
        out = []
        for i, row in enumerate(values):
            table = self.table.copy()
            table["final_accuracy"] = row
            decide = (lambda view, i=i: verdict.decide(self.protocol, view, i)) if naive \
                else None
            out.append(stages.progress(self.protocol, self.rows, table, self.design, seed=i,
                                       decide=decide))
        return out


def rates(progresses, claim: int = 0) -> dict[str, int]:
    found = {verdict.REPRODUCED: 0, verdict.NOT_REPRODUCED: 0, verdict.INCONCLUSIVE: 0}
    for p in progresses:
        found[p.looks[-1].verdicts[claim].verdict] += 1
    return found


def assert_corrected_and_naive(studies: Studies, values: np.ndarray, kinds=(
        verdict.REPRODUCED, verdict.NOT_REPRODUCED)):
    n = len(values)
    corrected = rates(studies.run(values, naive=False))
    naive = rates(studies.run(values, naive=True))
    for kind in kinds:
        assert at_most_five_percent(corrected[kind], n), (kind, corrected, naive)
        assert significantly_above_five_percent(naive[kind], n), (kind, corrected, naive)
    return corrected, naive


VALUE = [{"id": "value", "kind": "value", "arm": "transfg", "paper": 100 * TARGET,
          "tolerance": 100 * TOLERANCE}]


def test_a_value_claim_on_the_edge_decided_after_every_stage_errs_at_most_five_percent():
    # the truth exactly on the lower edge of paper +- tolerance: `reproduced` and `not
    # reproduced` are both wrong. Seeds 3, then 5, then 8, added only while undecided.
    studies = Studies(VALUE, [("transfg", "torch")])
    values = np.random.default_rng(201).normal(TARGET - TOLERANCE, SD, size=(1000, 8))
    corrected, naive = assert_corrected_and_naive(studies, values)
    # measured (seed 201): corrected 5.2% / 4.3%, naive 11.3% / 9.8%
    assert corrected[verdict.REPRODUCED] + corrected[verdict.NOT_REPRODUCED] < \
        0.6 * (naive[verdict.REPRODUCED] + naive[verdict.NOT_REPRODUCED])


def test_a_clear_claim_is_decided_at_an_early_stage_and_gets_no_more_seeds():
    # the truth at the paper's figure, spread 0.02 points (O'Brien-Fleming's first boundary on
    # 3 seeds is a nominal p of 0.0014): reproduced after the first stage, and the group gets
    # no further stage
    studies = Studies(VALUE, [("transfg", "torch")])
    values = np.random.default_rng(202).normal(TARGET, 0.0002, size=(20, 8))
    for p in studies.run(values, naive=False):
        assert p.stop == "decided" and len(p.looks) == 1
        assert p.looks[0].verdicts[0].verdict == verdict.REPRODUCED
        part = p.looks[0].verdicts[0].parts[0]
        assert part["sequential"]["looks"] == [3] and "sequential p" in part["why"]


def test_only_the_groups_of_undecided_claims_get_the_next_stage():
    # frameworks agree (clear) on transfg; the comparison vit vs transfg is on its edge
    claims = [{"id": "agree", "kind": "equivalence", "arm": "transfg", "margin": 2.0,
               "frameworks": ["torch", "jittor"]},
              {"id": "better", "kind": "comparison", "better": "transfg", "worse": "vit",
               "margin": 0.0, "frameworks": ["torch"]}]
    groups = [("transfg", "torch"), ("transfg", "jittor"), ("vit", "torch")]
    studies = Studies(claims, groups, frameworks=("torch", "jittor"))
    rng = np.random.default_rng(203)
    seed_effect = rng.normal(0, SD, size=8)
    transfg = TARGET + seed_effect
    values = np.concatenate([transfg, transfg + rng.normal(0, 0.0005, 8),
                             transfg + rng.normal(0, SD, 8)])[None, :]
    progress = studies.run(values, naive=False)[0]
    first, second = progress.looks[0], progress.looks[1]
    assert first.verdicts[0].verdict == verdict.REPRODUCED
    assert first.verdicts[1].verdict == verdict.INCONCLUSIVE
    assert set(second.extended) == {("transfg", "torch"), ("vit", "torch")}
    assert second.counts[("transfg", "jittor")] == 3 and second.counts[("vit", "torch")] == 5


def test_a_decided_claim_stays_decided_as_looks_are_added():
    # repeated p-values never rise: after a claim is decided, more seeds (for other claims)
    # cannot undo it
    design = Design("obrien-fleming", LOOKS)
    rng = np.random.default_rng(204)
    for _ in range(50):
        values = rng.normal(TARGET - 0.002, SD, size=8)
        ps = [verdict.value_part(values[:n], TARGET, TOLERANCE, tests=1)
              for n in (3, 5, 8)]
        token = verdict._DESIGN.set(design)
        try:
            seq = [verdict.value_part(values[:n], TARGET, TOLERANCE, tests=1)["p_value"]
                   for n in (3, 5, 8)]
        finally:
            verdict._DESIGN.reset(token)
        assert seq == sorted(seq, reverse=True)
        assert all(s >= p["p_value"] * 0.999 for s, p in zip(seq, ps, strict=True))


@pytest.mark.slow
def test_a_paired_comparison_on_its_margin_errs_at_most_five_percent():
    # measured (seed 205): corrected 3.9% / 5.1%, naive 9.4% / 11.3%
    claims = [{"id": "better", "kind": "comparison", "better": "transfg", "worse": "vit",
               "margin": 0.5}]
    studies = Studies(claims, [("transfg", "torch"), ("vit", "torch")])
    rng = np.random.default_rng(205)
    vit = TARGET + rng.normal(0, SD, size=(2000, 8))
    transfg = vit + 0.005 + rng.normal(0, SD, size=(2000, 8))
    assert_corrected_and_naive(studies, np.concatenate([transfg, vit], axis=1))


@pytest.mark.slow
def test_a_paired_equivalence_on_its_margin_errs_at_most_five_percent_with_pocock():
    # measured (seed 206): corrected 5.8% / 4.7% (within simulation error: SE 0.5 points),
    # naive 11.5% / 11.6%
    claims = [{"id": "agree", "kind": "equivalence", "arm": "transfg", "margin": 1.0,
               "frameworks": ["torch", "jittor"]}]
    studies = Studies(claims, [("transfg", "torch"), ("transfg", "jittor")],
                      frameworks=("torch", "jittor"), design=Design("pocock", LOOKS))
    rng = np.random.default_rng(206)
    torch = TARGET + rng.normal(0, SD, size=(2000, 8))
    jittor = torch + TOLERANCE + rng.normal(0, SD, size=(2000, 8))
    assert_corrected_and_naive(studies, np.concatenate([torch, jittor], axis=1))


@pytest.mark.slow
def test_a_welch_equivalence_on_its_margin_is_wrongly_decided_at_most_five_percent():
    # torch against the official code (unpaired: Welch with Hsu's degrees of freedom, the
    # union bound over looks). Measured (seed 207): corrected 3.8% / 3.0%, naive 9.1% / 6.0%
    # (Hsu's test is conservative already: the naive `not reproduced` is not significantly
    # above 5% at 2000 studies, its `reproduced` is)
    claims = [{"id": "official", "kind": "equivalence", "arm": "transfg", "margin": 1.0,
               "frameworks": ["torch", "official"]}]
    studies = Studies(claims, [("transfg", "torch"), ("transfg", "official")],
                      frameworks=("torch", "official"))
    rng = np.random.default_rng(207)
    torch = rng.normal(TARGET + TOLERANCE, SD, size=(2000, 8))
    official = rng.normal(TARGET, SD, size=(2000, 8))
    corrected, naive = assert_corrected_and_naive(
        studies, np.concatenate([torch, official], axis=1), kinds=(verdict.REPRODUCED,))
    assert at_most_five_percent(corrected[verdict.NOT_REPRODUCED], 2000), corrected
    assert corrected[verdict.NOT_REPRODUCED] < naive[verdict.NOT_REPRODUCED]


@pytest.mark.slow
def test_five_value_claims_on_the_edge_in_stages_keep_the_familywise_rate_with_holm():
    # Holm over the claims at every look, on repeated p-values: at most 5% of reports call any
    # of 5 claims on the edge reproduced (or not reproduced); each claim's groups stop when it
    # is decided
    claims = [{"id": f"c{i}", "kind": "value", "arm": f"a{i}", "paper": 100 * TARGET,
               "tolerance": 100 * TOLERANCE} for i in range(5)]
    studies = Studies(claims, [(f"a{i}", "torch") for i in range(5)])
    edge = TARGET + TOLERANCE * np.where(np.arange(5) % 2, 1.0, -1.0)
    values = np.random.default_rng(208).normal(np.repeat(edge, 8), SD, size=(1000, 40))
    reports = studies.run(values, naive=False)
    for kind in (verdict.REPRODUCED, verdict.NOT_REPRODUCED):
        wrong = sum(any(v.verdict == kind for v in p.looks[-1].verdicts) for p in reports)
        assert at_most_five_percent(wrong, 1000), (kind, wrong)


# --------------------------------------------------------------------- protocol and seeds

def sequential_protocol(extra: dict | None = None, seeds=None):
    claims = [{"id": "value", "kind": "value", "arm": "transfg", "paper": 91.7,
               "tolerance": 1.0, "text": "t", "source": "paper"}]
    data = {"version": 1, "name": "seq", "title": "t", "frameworks": ["torch"],
            "seeds": seeds or [0, 1, 2, 3, 4], "paper": {"title": "TransFG"},
            "data": {"dataset": "digits", "root": "bundled"}, "model": {"preset": "tiny"},
            "arms": {"transfg": {}},
            "published": [{"id": "paper", "value": 91.7, "setting": "paper", "arm": "transfg",
                           "source": {"kind": "paper", "citation": "c"}}],
            "claims": claims}
    if extra is not None:
        data["sequential"] = extra
    return parse(data, "seq.toml")


def test_the_protocol_declares_its_design_and_bad_ones_are_refused():
    protocol = sequential_protocol({"spending": "pocock", "first": 4, "step": 2,
                                    "max_seeds": 10})
    assert stages.design_for(protocol) == Design("pocock", (4, 6, 8, 10))
    assert stages.design_for(protocol, 6) == Design("pocock", (4, 6))
    assert stages.design_for(sequential_protocol()) == Design("obrien-fleming", (3, 5))
    with pytest.raises(ProtocolError) as error:
        sequential_protocol({"spending": "haybittle", "stages": [3, 2]})
    assert "sequential.spending" in str(error.value) and "sequential.stages" in str(error.value)


def test_stage_seeds_continue_the_seed_rule_and_keep_the_fixed_designs_run_ids():
    protocol = sequential_protocol()
    fixed = {r.seed_label: r.run_id for r in plan(protocol, Inputs(smoke=True))}
    extended = plan(protocol, Inputs(smoke=True), max_seeds=8)
    assert [r.seed_label for r in extended] == [f"seed {s}" for s in range(8)]
    assert all(fixed[r.seed_label] == r.run_id for r in extended if r.seed_label in fixed)
    assert [s["seed"] for s in seed_grid(sequential_protocol(seeds=[7, 3]), count=4)] == \
        [7, 3, 8, 9]
    assert stages.seed_labels(protocol, 3) == ["seed 0", "seed 1", "seed 2"]
    assert sequential.natural_key("seed 10") > sequential.natural_key("seed 9")
