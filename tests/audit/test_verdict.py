"""Verdicts on hand-built result sets: for every claim kind, one set that must be reproduced,
one not reproduced and one inconclusive; Holm over a report; published figures alone."""

import numpy as np
import pandas as pd
import pytest

from audit import stats, verdict
from audit.protocol import parse

PROTOCOL = {
    "version": 1, "name": "v", "title": "verdict tests", "frameworks": ["torch", "jittor"],
    "seeds": [0, 1, 2, 3, 4], "paper": {"title": "TransFG"},
    "data": {"dataset": "cub"}, "model": {"preset": "tiny", "num_classes": 200},
    "arms": {"transfg": {}, "vit": {"model": {"variant": "vit"}},
             "a0": {"model": {"alpha": 0.0}}, "a4": {}, "a6": {"model": {"alpha": 0.6}}},
    "published": [{"id": "paper", "value": 91.7, "setting": "paper", "arm": "transfg",
                   "source": {"kind": "paper", "citation": "He et al. 2022"}},
                  {"id": "issue", "value": 89.0, "setting": "issue", "arm": "transfg",
                   "source": {"kind": "issue", "citation": "issue #1"}},
                  {"id": "near", "value": 91.5, "setting": "issue", "arm": "transfg",
                   "source": {"kind": "issue", "citation": "issue #2"}}],
    "claims": [
        {"id": "value", "kind": "value", "text": "t", "arm": "transfg", "paper": 91.7,
         "tolerance": 1.0, "source": "paper", "frameworks": ["torch"]},
        {"id": "comparison", "kind": "comparison", "text": "t", "better": "transfg",
         "worse": "vit", "frameworks": ["torch"]},
        {"id": "equivalence", "kind": "equivalence", "text": "t", "arm": "transfg",
         "frameworks": ["jittor", "torch"], "margin": 0.5},
        {"id": "ranking", "kind": "ranking", "text": "t", "arms": ["a0", "a4", "a6"],
         "best": "a4", "frameworks": ["torch"]},
    ],
}
PROTOCOL_OBJ = parse(PROTOCOL, "verdict-test.toml")
CLAIMS = {c.id: c for c in PROTOCOL_OBJ.claims}


def table(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    rows = []
    for (arm, framework), accuracies in values.items():
        for seed, accuracy in enumerate(accuracies):
            rows.append({"protocol": "v", "arm": arm, "framework": framework,
                         "seed": f"seed {seed}", "run_id": f"{arm}-{framework}-{seed}",
                         "final_accuracy": accuracy, "best_accuracy": accuracy + 0.003,
                         "final_step": 100, "best_step": 60})
    return pd.DataFrame(rows)


def decide(claim_id, values, correct_of=None):
    rng = np.random.default_rng(0)
    claim = CLAIMS[claim_id]
    t = table(values)
    if claim.kind == "value":
        return verdict.decide_value(claim, PROTOCOL_OBJ, t, "final")
    if claim.kind == "comparison":
        return verdict.decide_comparison(claim, PROTOCOL_OBJ, t, "final", rng, correct_of)
    if claim.kind == "equivalence":
        return verdict.decide_equivalence(claim, PROTOCOL_OBJ, t, "final")
    return verdict.decide_ranking(claim, PROTOCOL_OBJ, t, "final", rng)


BASE = np.array([0.880, 0.884, 0.878, 0.886, 0.882])  # a seed effect shared by paired arms
NOISE = np.array([0.0004, -0.0003, 0.0001, -0.0002, 0.0003])
WIDE = np.array([-0.012, 0.010, -0.004, 0.014, -0.008])


@pytest.mark.parametrize("values,expected", [
    ([0.916, 0.918, 0.917, 0.915, 0.919], "reproduced"),
    ([0.880, 0.882, 0.879, 0.881, 0.883], "not reproduced"),
    ([0.905, 0.925, 0.892, 0.935, 0.915], "inconclusive"),
    ([0.917], "inconclusive"),  # one seed: no interval
    ([], "inconclusive"),  # no runs
])
def test_value_claims(values, expected):
    v = decide("value", {("transfg", "torch"): values})
    assert v.verdict == expected, v.sentence
    assert v.sentence.lower().startswith(expected)
    if expected == "reproduced":
        assert v.p_value < 0.05 and v.parts[0]["paper_in_prediction"]
    if expected == "not reproduced":
        assert "below" in v.sentence
    if values and len(values) > 2 and expected == "inconclusive":
        assert v.more_seeds and v.more_seeds >= 1 and "more seed" in v.sentence


@pytest.mark.parametrize("difference,expected", [
    (0.01 + NOISE, "reproduced"),
    (-0.01 + NOISE, "not reproduced"),
    (WIDE, "inconclusive"),
])
def test_comparison_claims(difference, expected):
    v = decide("comparison", {("transfg", "torch"): list(BASE + difference),
                              ("vit", "torch"): list(BASE)})
    assert v.verdict == expected, v.sentence
    part = v.parts[0]
    assert part["pairs"] == 5 and part["seeds"] == [f"seed {i}" for i in range(5)]
    poi = part["probability_of_improvement"]
    if expected == "reproduced":
        assert poi["estimate"] > 0.5
    if expected == "not reproduced":
        assert poi["estimate"] < 0.5


def test_comparison_pairs_by_seed_and_tests_examples():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, size=(5, 400))
    better = truth | (rng.random((5, 400)) < 0.3)  # A right wherever B is, and more

    def correct_of(key):
        run_id, step = key
        seed = int(run_id.rsplit("-", 1)[1])
        assert step == 100  # the final reading's step
        return better[seed] if run_id.startswith("transfg") else truth[seed]

    v = decide("comparison", {("transfg", "torch"): list(better.mean(1)),
                              ("vit", "torch"): list(truth.mean(1))}, correct_of)
    examples = v.parts[0]["examples"]
    assert len(examples) == 5
    assert all(e["b_only"] == 0 and e["a_only"] > 0 and e["mcnemar_p"] < 1e-6 for e in examples)
    assert all(e["difference"]["low"] > 0 for e in examples)


def test_tests_over_examples_change_no_other_number_of_their_claim():
    """A comparison over two frameworks decided with and without the stored predictions: every
    number but the tests over test examples is the same (they draw from streams of their own),
    so a report whose predictions cannot be read shows the same intervals."""
    import copy

    raw = copy.deepcopy(PROTOCOL)
    raw["claims"][1]["frameworks"] = ["torch", "jittor"]
    protocol = parse(raw, "two-frameworks.toml")
    claim = next(c for c in protocol.claims if c.id == "comparison")
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, size=(5, 300)).astype(bool)
    better = truth | (rng.random((5, 300)) < 0.03)  # about 1.5 points: seeds overlap

    def correct_of(key):
        run_id = key[0]
        return better[int(run_id.rsplit("-", 1)[1])] if run_id.startswith("transfg") else \
            truth[int(run_id.rsplit("-", 1)[1])]

    t = table({(arm, framework): list(values.mean(1) + 2 * WIDE)
               for arm, values in (("transfg", better), ("vit", truth))
               for framework in ("torch", "jittor")})

    def decided(correct):
        return verdict.decide_comparison(claim, protocol, t, "final", np.random.default_rng(7),
                                         correct)

    with_examples, without = decided(correct_of), decided(None)
    assert [len(p["examples"]) for p in with_examples.parts] == [5, 5]
    assert [p["examples"] for p in without.parts] == [[], []]
    for a, b in zip(with_examples.parts, without.parts, strict=True):
        assert a["probability_of_improvement"] == b["probability_of_improvement"]
        assert (a["ci90"], a["p_value"], a["verdict"]) == (b["ci90"], b["p_value"], b["verdict"])


@pytest.mark.parametrize("offset,expected", [
    (NOISE, "reproduced"),
    (-0.02 + NOISE, "not reproduced"),
    (WIDE, "inconclusive"),
])
def test_equivalence_claims(offset, expected):
    v = decide("equivalence", {("transfg", "jittor"): list(BASE + offset),
                               ("transfg", "torch"): list(BASE)})
    assert v.verdict == expected, v.sentence


@pytest.mark.parametrize("a0,a6,expected", [
    (BASE - 0.01 + NOISE, BASE - 0.012 - NOISE, "reproduced"),
    (BASE + 0.02 + NOISE, BASE - 0.01, "not reproduced"),
    (BASE + WIDE, BASE - WIDE, "inconclusive"),
])
def test_ranking_claims(a0, a6, expected):
    v = decide("ranking", {("a0", "torch"): list(a0), ("a4", "torch"): list(BASE),
                           ("a6", "torch"): list(a6)})
    assert v.verdict == expected, v.sentence
    if expected == "not reproduced":
        assert "a0 is better than a4" in v.sentence


def test_holm_over_a_report_demotes_marginal_reproductions():
    def marginal(p):
        v = verdict.Verdict(CLAIMS["value"], verdict.REPRODUCED, "Reproduced.", p_value=p)
        return v
    verdicts = verdict.holm_over([marginal(0.03), marginal(0.04), marginal(0.001)])
    assert [v.verdict for v in verdicts] == ["inconclusive", "inconclusive", "reproduced"]
    assert "Holm" in verdicts[0].sentence


def test_all_claims_with_no_runs_are_inconclusive():
    verdicts = verdict.decide(PROTOCOL_OBJ, pd.DataFrame(), np.random.default_rng(0))
    assert [v.verdict for v in verdicts] == ["inconclusive"] * 4
    assert all("no finished runs" in v.sentence or "no seed" in v.sentence for v in verdicts)


def test_published_figures_alone_get_wilson_intervals():
    rows = {r["id"]: r for r in verdict.published_intervals(PROTOCOL_OBJ, 5794)}
    paper = rows["paper"]["wilson"]
    assert paper["low"] == pytest.approx(0.9096, abs=2e-4)
    assert paper["high"] == pytest.approx(0.9238, abs=2e-4)
    assert rows["issue"]["versus_paper"]["beyond_sampling_error"]  # 89.0 vs 91.7
    assert not rows["near"]["versus_paper"]["beyond_sampling_error"]  # 91.5 vs 91.7
    assert "versus_paper" not in rows["paper"]


def test_no_verdict_rests_on_zero_spread():
    """Identical seeds measured no spread (the seed may not reach the training): inconclusive
    with p = 1, not a verdict with p = 0 that no correction can touch."""
    v = decide("value", {("transfg", "torch"): [0.917] * 3})
    assert v.verdict == "inconclusive" and v.p_value == 1.0
    assert "seed may vary nothing" in v.sentence and "no spread was measured" in v.sentence
    assert any("zero spread" in w for w in v.warnings) and v.parts[0]["zero_spread"]
    assert "If the seed does vary the training" in v.sentence  # seeds needed, from a prior
    v = decide("comparison", {("transfg", "torch"): list(BASE + 0.01),
                              ("vit", "torch"): list(BASE)})
    assert v.verdict == "inconclusive" and v.p_value == 1.0
    assert "seed may vary nothing" in v.sentence


def test_a_constant_paired_difference_between_frameworks_is_exact_agreement():
    """Bit-identical ports (or any constant difference): no sampling error to test, so the
    difference against the margin decides, and says so; p 0 inside (certain), 1 outside."""
    same = list(BASE)
    v = decide("equivalence", {("transfg", "jittor"): same, ("transfg", "torch"): same})
    assert v.verdict == "reproduced" and v.p_value == 0.0 and v.parts[0]["exact"] is True
    assert "exact agreement" in v.sentence and "no sampling error" in v.sentence
    v = decide("equivalence", {("transfg", "jittor"): list(BASE + 0.01),
                               ("transfg", "torch"): same})
    assert v.verdict == "not reproduced" and v.p_value == 1.0 and v.parts[0]["exact"] is True
    assert v.p_not_reproduced == 0.0 and "beyond the margin" in v.sentence
    # every seed identical in both frameworks as well: said, the seed may vary nothing
    v = decide("equivalence", {("transfg", "jittor"): [0.9] * 3, ("transfg", "torch"): [0.9] * 3})
    assert v.verdict == "reproduced" and "seed may vary nothing" in v.sentence


# ------------------------------------------------------------------ three frameworks: official

THREE = parse(PROTOCOL | {
    "frameworks": ["torch", "jittor", "official"], "model": {"preset": "vit_b16"},
    "claims": [{"id": "three", "kind": "equivalence", "text": "t", "arm": "transfg",
                "frameworks": ["torch", "jittor", "official"], "margin": 0.5}]},
    "verdict-three.toml")
OFFICIAL_SEEDS = [f"seed {k}" for k in range(100, 107)]  # none of them is one of our seeds


def decide_three(official: np.ndarray) -> verdict.Verdict:
    """Our ports paired by seed (BASE and BASE + NOISE), the official runs on other seeds."""
    ours = table({("transfg", "torch"): list(BASE), ("transfg", "jittor"): list(BASE + NOISE)})
    theirs = table({("transfg", "official"): list(official)})
    theirs["seed"] = OFFICIAL_SEEDS[:len(official)]
    return verdict.decide_equivalence(THREE.claims[0], THREE, pd.concat([ours, theirs]), "final")


def test_equivalence_over_three_frameworks_tests_every_pair_official_unpaired():
    official = np.random.default_rng(2).normal(BASE.mean(), 0.003, size=7)
    v = decide_three(official)
    parts = {p["framework"]: p for p in v.parts}
    assert list(parts) == ["torch - jittor", "torch - official", "jittor - official"]
    ports = parts["torch - jittor"]
    assert ports["test"] == "paired TOST" and ports["pairs"] == 5
    assert ports["seeds"] == [f"seed {i}" for i in range(5)]
    assert "paired by seed" in ports["why"] and "unpaired" not in ports["why"]
    assert ports["tost_p"] == pytest.approx(stats.tost_paired(BASE, BASE + NOISE, 0.005).p_value)
    for name, ours in [("torch", BASE), ("jittor", BASE + NOISE)]:
        part = parts[f"{name} - official"]
        assert part["test"] == "Welch TOST" and "unpaired" in part["why"]
        # every official run is used although no official seed matches one of ours
        assert (part["n_a"], part["n_b"]) == (5, 7)
        assert part["sd_b"] == pytest.approx(np.std(official, ddof=1))
        assert part["mean_difference"] == pytest.approx(ours.mean() - official.mean())
        assert part["tost_p"] == pytest.approx(stats.tost_welch(ours, official, 0.005).p_value)
        assert {"margin", "ci90", "ci_not", "sd_a"} <= set(part)
    assert [p["verdict"] for p in v.parts] == ["reproduced"] * 3 and v.verdict == "reproduced"
    assert v.p_value == max(p["p_value"] for p in v.parts)  # what Holm over the report reads


@pytest.mark.parametrize("official,expected", [
    (BASE.mean() - 0.02 + np.array([0.001, -0.002, 0.0, 0.002]), "not reproduced"),
    (BASE.mean() + np.array([0.012, -0.010, 0.004, -0.006]), "inconclusive"),
])
def test_one_failing_official_pair_decides_the_claim_as_combine_does(official, expected):
    v = decide_three(official)
    verdicts = [p["verdict"] for p in v.parts]
    assert verdicts == ["reproduced", expected, expected]  # the ports agree; the official does not
    assert v.verdict == verdict.combine(verdicts) == expected, v.sentence
    if expected == "inconclusive":
        part = v.parts[1]
        needed = stats.seeds_needed_welch(part["sd_a"], part["sd_b"], 0.005,
                                          part["mean_difference"])
        assert part["more_seeds"] == needed - 4  # brings the 4 official runs up to `needed`
        assert v.more_seeds == max(p["more_seeds"] for p in v.parts[1:])
        assert "more seed" in v.sentence


@pytest.mark.parametrize("official,why", [
    ([], "no finished runs yet of official"),
    ([0.882], "at least 2 runs"),
])
def test_too_few_official_runs_leave_their_pairs_inconclusive(official, why):
    v = decide_three(np.array(official))
    assert [p["verdict"] for p in v.parts] == ["reproduced", "inconclusive", "inconclusive"]
    assert all(why in p["why"] for p in v.parts[1:])
    assert v.verdict == "inconclusive" and v.p_value == 1.0
    # seeds needed from a prior spread for the official runs: the pooled spread of the groups
    # with 2 or more runs (our two ports), said in the sentence
    for part in v.parts[1:]:
        assert part["spread_source"] == "pooled" and part["more_seeds"] >= 2
    assert "pooled spread of the protocol's groups" in v.sentence and "more seeds" in v.sentence


def test_which_frameworks_pair_by_seed_is_one_explicit_rule():
    assert verdict.UNPAIRED_FRAMEWORKS == {"official"}
    assert verdict.pairs_by_seed("torch", "jittor") and verdict.pairs_by_seed("jittor", "torch")
    assert not verdict.pairs_by_seed("torch", "official")
    assert not verdict.pairs_by_seed("official", "jittor")


# ------------------------------------------------------------------ p-values, Holm, randomness

def test_every_claim_carries_its_p_value_for_reproduced_whatever_its_verdict():
    cases = {"value": {("transfg", "torch"): [0.880, 0.882, 0.879, 0.881, 0.883]},
             "comparison": {("transfg", "torch"): list(BASE + WIDE), ("vit", "torch"): list(BASE)},
             "equivalence": {("transfg", "jittor"): list(BASE - 0.02 + NOISE),
                             ("transfg", "torch"): list(BASE)}}
    for claim_id, values in cases.items():
        v = decide(claim_id, values)
        assert v.verdict != "reproduced" and 0.05 <= v.p_value <= 1.0
        assert v.p_value == max(p["p_value"] for p in v.parts)
    # too little data: p = 1 (no evidence), never NaN, which Holm would drop from its family
    assert decide("value", {("transfg", "torch"): [0.917]}).p_value == 1.0
    assert decide("value", {}).p_value == 1.0


def test_holm_runs_over_all_claims_and_only_demotes():
    t = table({("transfg", "torch"): [0.9165, 0.9175, 0.9172, 0.9168, 0.9170],
               ("transfg", "jittor"): [0.9165, 0.9175, 0.9172, 0.9168, 0.9170]})
    alone = verdict.decide(PROTOCOL_OBJ, t, 0, holm=False)
    assert alone[0].verdict == "reproduced" and "p_holm" not in alone[0].numbers
    corrected = verdict.decide(PROTOCOL_OBJ, t, 0)
    # the family is all 4 claims: the frameworks' exact agreement (p = 0, certain) first, then
    # the value claim's p times 3, then two claims with no data (p = 1); nothing is promoted
    assert all(v.numbers["holm_family"] == 4 for v in corrected)
    assert corrected[2].p_value == 0.0 and corrected[2].parts[0]["exact"]
    assert corrected[0].numbers["p_holm"] == pytest.approx(3 * corrected[0].p_value)
    for before, after in zip(alone, corrected, strict=True):
        assert after.verdict in (before.verdict, "inconclusive")


def test_a_marginal_claim_is_demoted_by_a_report_wide_holm_with_its_reason():
    v = decide("value", {("transfg", "torch"): [0.9271, 0.9261, 0.9268, 0.9264, 0.9266]})
    assert v.verdict == "reproduced" and 0.0125 < v.p_value < 0.05  # 0.039
    others = [verdict.Verdict(CLAIMS["comparison"], "inconclusive", "Inconclusive.")] * 3
    (demoted, *_) = verdict.holm_over([v, *others])
    assert demoted.verdict == "inconclusive" and demoted.numbers["demoted_by_holm"] == \
        "reproduced"
    assert demoted.sentence.startswith("Inconclusive after Holm's correction over the report's "
                                       "4 claims: its p for reproduced")
    # and the mirror: a marginal `not reproduced` (the tolerance's other side) is demoted too
    v = decide("value", {("transfg", "torch"): [0.9071, 0.9061, 0.9068, 0.9064, 0.9066]})
    assert v.verdict == "not reproduced" and 0.0125 < v.p_not_reproduced < 0.05
    (demoted, *_) = verdict.holm_over([v, *others])
    assert demoted.verdict == "inconclusive" and demoted.numbers["demoted_by_holm"] == \
        "not reproduced"
    assert "its p for not reproduced" in demoted.sentence


def test_adding_a_claim_changes_no_other_claims_interval():
    values = {("transfg", "torch"): list(BASE + 0.01 + NOISE), ("vit", "torch"): list(BASE)}
    first = verdict.decide(PROTOCOL_OBJ, table(values), 7)
    more = parse(PROTOCOL | {"claims": [*PROTOCOL["claims"], {
        "id": "extra", "kind": "comparison", "text": "t", "better": "a0", "worse": "a6",
        "frameworks": ["torch"]}]}, "verdict-more.toml")
    second = verdict.decide(more, table(values), 7)
    assert second[1].parts[0]["probability_of_improvement"] == \
        first[1].parts[0]["probability_of_improvement"]
    assert second[1].numbers["random_stream"] == [7, 1]
    # the same seed, given as a Generator, is one draw from it; a bad rng is refused
    assert verdict.random_seed(np.random.default_rng(3)) == \
        verdict.random_seed(np.random.default_rng(3))
    with pytest.raises(TypeError, match="Generator or a seed"):
        verdict.decide(PROTOCOL_OBJ, table(values), -1)


# ------------------------------------------------------------------ sentences and evidence

def test_a_comparison_sentence_shows_the_interval_of_its_one_sided_test():
    v = decide("comparison", {("transfg", "torch"): list(BASE + 0.01 + NOISE),
                              ("vit", "torch"): list(BASE)})
    part = v.parts[0]
    assert "one-sided 95% lower bound" in v.sentence and "90% interval" in v.sentence
    assert "95% interval" not in v.sentence
    assert part["ci90"]["level"] == pytest.approx(0.90)
    assert f"{100 * part['ci90']['low']:+.2f} points" in v.sentence


def test_statistical_warnings_are_recorded_in_the_part_and_the_verdict():
    same = np.arange(400) % 4 != 0  # two runs that agree on every example: BCa is degenerate

    v = decide("comparison", {("transfg", "torch"): list(BASE + 0.01 + NOISE),
                              ("vit", "torch"): list(BASE)}, correct_of=lambda key: same)
    assert any("percentile" in w for w in v.parts[0]["warnings"])
    assert any("over test examples" in w and "percentile" in w for w in v.warnings)
    assert all(e["warnings"] for e in v.parts[0]["examples"])


# ------------------------------------------------------------------ seeds needed

def test_one_seed_plans_from_the_default_spread_and_says_so():
    v = decide("value", {("transfg", "torch"): [0.917]})
    part = v.parts[0]
    assert part["spread_source"] == "default" and part["spread"] == verdict.DEFAULT_SEED_SD
    # TOST at a seed SD of 0.3 points and a tolerance of 1 point needs 3 seeds: 2 more
    assert v.more_seeds == stats.seeds_needed(0.003, 0.01, 0.0) - 1 == 2
    assert "the audit's default seed spread, 0.30 points" in v.sentence


def test_the_protocol_s_declared_spread_wins_then_the_pooled_spread():
    declared = parse(PROTOCOL | {"seed_sd": 0.5}, "verdict-sd.toml")
    t = table({("transfg", "torch"): [0.917], ("vit", "torch"): list(BASE + WIDE)})
    v = verdict.decide_value(CLAIMS["value"], declared, t, "final")
    assert v.parts[0]["spread_source"] == "protocol" and v.parts[0]["spread"] == 0.005
    assert "declared seed spread (seed_sd), 0.50 points" in v.sentence
    v = verdict.decide_value(CLAIMS["value"], PROTOCOL_OBJ, t, "final")
    assert v.parts[0]["spread_source"] == "pooled"
    assert v.parts[0]["spread"] == pytest.approx(np.std(BASE + WIDE, ddof=1))
    # a measured spread is uncertain: also at the upper end of its one-sided 80% interval
    assert v.parts[0]["more_seeds_high"] > v.more_seeds
    assert "up to" in v.sentence


def test_a_spread_measured_over_seeds_gives_a_range_and_says_it_is_optimistic():
    v = decide("value", {("transfg", "torch"): [0.905, 0.925, 0.892, 0.935, 0.915]})
    assert v.verdict == "inconclusive" and v.parts[0]["spread_source"] == "observed"
    assert v.numbers["more_seeds_high"] > v.more_seeds
    assert "optimistic" in v.sentence and "one-sided 80% interval" in v.sentence


# ------------------------------------------------------------------ unpaired fallback, ranking

def test_ports_with_different_seed_lists_are_compared_unpaired():
    t = table({("transfg", "torch"): list(BASE), ("transfg", "jittor"): list(BASE + NOISE)})
    t.loc[t["framework"] == "jittor", "seed"] = [f"seed {k}" for k in range(10, 15)]
    v = verdict.decide_equivalence(CLAIMS["equivalence"], PROTOCOL_OBJ, t, "final")
    part = v.parts[0]
    assert part["test"] == "Welch TOST" and part["seeds"] == []
    assert "the frameworks share 0 seeds, fewer than a paired test needs" in part["why"]
    assert part["p_value"] == pytest.approx(stats.tost_welch(BASE + NOISE, BASE, 0.005).p_value)


def test_a_ranking_holds_when_the_best_beats_each_other_arm_intersection_union():
    a0, a6 = BASE - 0.01 + NOISE, BASE - 0.012 - NOISE
    v = decide("ranking", {("a0", "torch"): list(a0), ("a4", "torch"): list(BASE),
                           ("a6", "torch"): list(a6)})
    raw = [stats.t_test(BASE - other, 0.0, "greater") for other in (a0, a6)]
    assert v.verdict == "reproduced" and v.p_value == pytest.approx(max(raw))
    # not reproduced: some arm beats it at the level corrected for the 2 comparisons (95%)
    v = decide("ranking", {("a0", "torch"): list(BASE + 0.02 + NOISE),
                           ("a4", "torch"): list(BASE), ("a6", "torch"): list(BASE - 0.01)})
    assert "the 95% interval of a4 - a0 (the 90% one corrected for the claim's 2 tests" \
        in v.sentence
