"""Claims -> verdicts: `reproduced`, `not reproduced` or `inconclusive`, with the numbers behind
each and one plain sentence that says why (spec/statistics.md).

Inputs are the collected results table (`audit.results.collect`: one line per finished run,
accuracies as proportions) and, for the paired tests over test examples, a function that returns
a run's per-example correctness at a step (from its stored predictions). Runs of two arms, or of
our two frameworks, are paired by seed (the same seed means the same data order and
initialisation); the official code's runs pair with nothing (see UNPAIRED_FRAMEWORKS).

Rules (alpha = 0.05):
- value: `reproduced` when TOST shows the mean within paper +- tolerance (the 90% t-interval
  inside the band); `not reproduced` when the 95% interval of (ours - paper) excludes 0 and the
  difference exceeds the tolerance; otherwise `inconclusive`, with the seeds a TOST would need.
  Tested per framework; the claim holds when it holds in every framework tested.
- comparison (A better than B by at least margin): one-sided paired t-test of A - B > margin;
  `not reproduced` when the 95% interval of A - B lies below the margin.
- equivalence (frameworks): every pair of the claim's frameworks, a TOST of the difference within
  +- margin; `not reproduced` when the 95% interval excludes 0 and the difference exceeds the
  margin. Paired by seed between our two ports; unpaired (Welch, all runs of each) where a pair
  includes a framework that does not pair by seed (UNPAIRED_FRAMEWORKS: the official code).
- ranking (arm X best): X compared with every other arm as a comparison with margin 0, Holm-
  corrected; `not reproduced` when some other arm is better than X (its interval above 0).
Over all claims of a report, Holm's correction is applied to the p-values behind `reproduced`
verdicts; a claim that no longer passes becomes `inconclusive`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from audit import stats
from audit.protocol import Claim, Protocol
from transfg.run_files import RunFileError

ALPHA = 0.05
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
BEST_OF = 5  # the paper's figure modelled as the best of this many runs
EXAMPLE_PAIRS = 5  # seed pairs tested over test examples (each a bootstrap over the test set)


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    sentence: str
    numbers: dict[str, Any] = field(default_factory=dict)
    parts: list[dict] = field(default_factory=list)  # per framework (value, comparison, ranking)
    p_value: float = math.nan  # behind a `reproduced` verdict, for Holm over the report
    more_seeds: int | None = None  # inconclusive: seeds per group that would likely decide it

    def to_dict(self) -> dict:
        return {"claim": self.claim.id, "kind": self.claim.kind, "text": self.claim.text,
                "verdict": self.verdict, "sentence": self.sentence, "numbers": self.numbers,
                "parts": self.parts, "p_value": self.p_value, "more_seeds": self.more_seeds}


def pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.2f}%"


def pts(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.2f} points"


def reading_column(reading: str) -> str:
    return "final_accuracy" if reading == "final" else "best_accuracy"


def combine(verdicts: list[str]) -> str:
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.StatsWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def _frameworks(claim: Claim, protocol: Protocol) -> list[str]:
    return list(claim.frameworks or protocol.frameworks)


def _values(table: pd.DataFrame, arm: str, framework: str, column: str) -> pd.Series:
    """Accuracies of one arm in one framework, indexed by seed label."""
    if table.empty:
        return pd.Series(dtype=float)
    rows = table[(table["arm"] == arm) & (table["framework"] == framework)]
    return rows.set_index("seed")[column].astype(float).sort_index()


def _paired(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    seeds = sorted(set(a.index) & set(b.index))
    return a[seeds].to_numpy(), b[seeds].to_numpy(), seeds


# ------------------------------------------------------------------------------------ value

def value_part(values: np.ndarray, target: float, delta: float) -> dict:
    n = len(values)
    part: dict[str, Any] = {"seeds": n, "target": target, "tolerance": delta}
    if n == 0:
        return part | {"verdict": INCONCLUSIVE, "why": "no finished runs yet",
                       "more_seeds": None}
    mean = float(np.mean(values))
    part |= {"mean": mean, "values": [float(v) for v in values]}
    if n < 2:
        return part | {"verdict": INCONCLUSIVE, "more_seeds": 1,
                       "why": f"one seed ({pct(mean)}) gives no interval over seeds"}
    if np.ptp(values) == 0:  # every seed identical: no spread to test, the value decides
        inside = abs(mean - target) < delta
        return part | {"verdict": REPRODUCED if inside else NOT_REPRODUCED, "sd": 0.0,
                       "p_value": 0.0 if inside else math.nan,
                       "why": f"all {n} seeds give {pct(mean)}, "
                              + ("inside" if inside else "outside")
                              + f" {pct(target)} +- {100 * delta:.2f}"}
    tost = _quiet(stats.tost_one_sample, values, target, delta, ALPHA)
    difference = _quiet(stats.difference_interval, values, target)
    prediction = _quiet(stats.prediction_interval, values)
    sd = float(np.std(values, ddof=1))
    part |= {"sd": sd, "ci95": _quiet(stats.t_interval, values).to_dict(),
             "ci90": tost.ci.to_dict(), "tost_p": tost.p_value,
             "difference": difference.to_dict(), "prediction": prediction.to_dict(),
             "paper_in_prediction": prediction.contains(target),
             "expected_best_of_5": _quiet(stats.expected_best_of_n, values, BEST_OF)}
    if tost.equivalent:
        return part | {"verdict": REPRODUCED, "p_value": tost.p_value,
                       "why": f"mean {pct(mean)} over {n} seeds, 90% interval "
                              f"[{pct(tost.ci.low)}, {pct(tost.ci.high)}] inside "
                              f"{pct(target)} +- {100 * delta:.2f}"}
    if not difference.contains(0.0) and abs(mean - target) > delta:
        side = "below" if mean < target else "above"
        return part | {"verdict": NOT_REPRODUCED,
                       "why": f"mean {pct(mean)} over {n} seeds is {abs(100 * (mean - target)):.2f}"
                              f" points {side} {pct(target)}, more than the tolerance "
                              f"{100 * delta:.2f}; 95% interval of the difference "
                              f"[{pts(difference.low)}, {pts(difference.high)}]"}
    needed = _quiet(stats.seeds_needed, sd if sd > 0 else 1e-9, delta, mean - target)
    more = None if needed is None else max(needed - n, 1)
    return part | {"verdict": INCONCLUSIVE, "more_seeds": more,
                   "why": f"mean {pct(mean)} over {n} seeds (sd {100 * sd:.2f} points), 90% "
                          f"interval [{pct(tost.ci.low)}, {pct(tost.ci.high)}] not inside "
                          f"{pct(target)} +- {100 * delta:.2f} and not clearly outside"}


def decide_value(claim: Claim, protocol: Protocol, table: pd.DataFrame, reading: str) -> Verdict:
    target, delta = claim.paper / 100, claim.tolerance / 100
    parts = []
    for framework in _frameworks(claim, protocol):
        values = _values(table, claim.arm, framework, reading_column(reading)).to_numpy()
        parts.append({"framework": framework} | value_part(values, target, delta))
    return _finish(claim, parts, f"{claim.arm}: paper {claim.paper:.2f}% +- "
                   f"{claim.tolerance:.2f}, {reading} reading")


def _finish(claim: Claim, parts: list[dict], context: str) -> Verdict:
    verdict = combine([p["verdict"] for p in parts])
    reasons = "; ".join(f"{p['framework']}: {p['why']}" for p in parts)
    if verdict == REPRODUCED:
        sentence = f"Reproduced ({context}): {reasons}."
    elif verdict == NOT_REPRODUCED:
        sentence = f"Not reproduced ({context}): {reasons}."
    else:
        sentence = f"Inconclusive ({context}): {reasons}."
    more = [p.get("more_seeds") for p in parts if p["verdict"] == INCONCLUSIVE]
    more_seeds = max((m for m in more if m is not None), default=None)
    if verdict == INCONCLUSIVE and more_seeds is not None:
        sentence += f" About {more_seeds} more seed(s) per group would likely decide it."
    p_values = [p.get("p_value", math.nan) for p in parts]
    p_value = max(p_values) if verdict == REPRODUCED else math.nan
    return Verdict(claim, verdict, sentence, {"context": context}, parts, p_value, more_seeds)


# ------------------------------------------------------------------------------- comparisons

def comparison_part(a: np.ndarray, b: np.ndarray, margin: float, rng) -> dict:
    n = len(a)
    part: dict[str, Any] = {"pairs": n, "margin": margin}
    if n == 0:
        return part | {"verdict": INCONCLUSIVE, "why": "no seed with both runs finished",
                       "more_seeds": None}
    diff = a - b
    mean = float(diff.mean())
    part |= {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_difference": mean}
    if n >= 2 and np.ptp(diff) == 0:  # a constant difference decides
        better = mean > margin
        return part | {"verdict": REPRODUCED if better else NOT_REPRODUCED, "sd": 0.0,
                       "p_value": 0.0 if better else 1.0,
                       "why": f"the difference is {pts(mean)} for all {n} seed pairs"}
    if n < 2:
        return part | {"verdict": INCONCLUSIVE, "more_seeds": 1,
                       "why": f"one seed pair (difference {pts(mean)}) gives no interval"}
    interval = _quiet(stats.paired_difference, a, b)
    sd = float(diff.std(ddof=1))
    if sd > 0:
        p = float(scipy_stats.ttest_1samp(diff - margin, 0.0, alternative="greater").pvalue)
    else:
        p = 0.0 if mean > margin else 1.0
    improvement = _quiet(stats.probability_of_improvement, a, b, rng)
    part |= {"difference": interval.to_dict(), "p_value": p, "sd": sd,
             "probability_of_improvement": improvement.to_dict()}
    if p < ALPHA:
        return part | {"verdict": REPRODUCED,
                       "why": f"better by {pts(mean)} on average over {n} seed pairs, 95% "
                              f"interval [{pts(interval.low)}, {pts(interval.high)}], one-sided "
                              f"p = {p:.3g}"}
    if interval.high < margin:
        return part | {"verdict": NOT_REPRODUCED,
                       "why": f"difference {pts(mean)} over {n} seed pairs, 95% interval "
                              f"[{pts(interval.low)}, {pts(interval.high)}] below the margin "
                              f"{100 * margin:.2f}"}
    effect = mean - margin
    needed = _quiet(stats.seeds_needed_difference, sd if sd > 0 else 1e-9, effect) \
        if effect > 0 else None
    return part | {"verdict": INCONCLUSIVE, "more_seeds": None if needed is None
                   else max(needed - n, 1),
                   "why": f"difference {pts(mean)} over {n} seed pairs, 95% interval "
                          f"[{pts(interval.low)}, {pts(interval.high)}] (p = {p:.3g})"}


def example_tests(a_runs: pd.Series, b_runs: pd.Series, correct_of: Callable | None, rng
                  ) -> list[dict]:
    """McNemar and a paired bootstrap over test examples, per seed pair (stored predictions), for
    the first EXAMPLE_PAIRS pairs. A pair whose predictions cannot be read is listed with its
    `problem` (the run, the file and what is wrong), never dropped in silence. `correct_of`
    raises RunFileError for a missing or damaged eval file."""
    if correct_of is None:
        return []
    out = []
    for seed in sorted(set(a_runs.index) & set(b_runs.index))[:EXAMPLE_PAIRS]:
        try:
            ca, cb = correct_of(a_runs[seed]), correct_of(b_runs[seed])
        except RunFileError as error:
            out.append({"seed": seed, "problem": str(error)})
            continue
        if len(ca) != len(cb):
            out.append({"seed": seed, "problem": f"{len(ca)} against {len(cb)} test examples"})
            continue
        mcnemar = stats.mcnemar_exact(ca, cb)
        boot = _quiet(stats.paired_bootstrap_examples, ca, cb, rng, n_resamples=1000)
        out.append({"seed": seed, "mcnemar_p": mcnemar.p_value, "a_only": mcnemar.a_only,
                    "b_only": mcnemar.b_only, "difference": boot.to_dict()})
    return out


def _run_ids(table: pd.DataFrame, arm: str, framework: str, step_column: str) -> pd.Series:
    if table.empty:
        return pd.Series(dtype=object)
    rows = table[(table["arm"] == arm) & (table["framework"] == framework)]
    return pd.Series(list(zip(rows["run_id"], rows[step_column], strict=True)),
                     index=rows["seed"])


def decide_comparison(claim: Claim, protocol: Protocol, table, reading, rng, correct_of
                      ) -> Verdict:
    column = reading_column(reading)
    steps = "final_step" if reading == "final" else "best_step"
    margin = (claim.margin or 0.0) / 100
    parts = []
    for framework in _frameworks(claim, protocol):
        a = _values(table, claim.better, framework, column)
        b = _values(table, claim.worse, framework, column)
        va, vb, seeds = _paired(a, b)
        part = {"framework": framework, "seeds": seeds} | comparison_part(va, vb, margin, rng)
        part["examples"] = example_tests(_run_ids(table, claim.better, framework, steps),
                                         _run_ids(table, claim.worse, framework, steps),
                                         correct_of, rng)
        unread = [e for e in part["examples"] if "problem" in e]
        if unread:
            part["why"] += (f"; tests over test examples on {len(part['examples']) - len(unread)}"
                            f" of {len(part['examples'])} seed pairs ("
                            + "; ".join(f"{e['seed']}: {e['problem']}" for e in unread)
                            + ")")
        parts.append(part)
    return _finish(claim, parts, f"{claim.better} better than {claim.worse} by at least "
                   f"{claim.margin or 0:.2f} points, {reading} reading")


# Frameworks whose runs do not pair by seed with any other framework's. The official code draws its
# initialisation from torch's generator, our two ports draw theirs in numpy from the run's seed
# (the same seed gives the same initialisation and data order in both ports), so the official
# code's seed k has nothing in common with our seed k. A pair that includes one of these is tested
# unpaired (Welch), on all finished runs of each framework; a pair of our ports is paired by seed.
UNPAIRED_FRAMEWORKS = frozenset({"official"})


def pairs_by_seed(first: str, second: str) -> bool:
    return first not in UNPAIRED_FRAMEWORKS and second not in UNPAIRED_FRAMEWORKS


def paired_equivalence_part(a: np.ndarray, b: np.ndarray, delta: float) -> dict:
    """Paired TOST of a - b within +- delta, runs paired by position (by seed)."""
    n = len(a)
    part: dict[str, Any] = {"test": "paired TOST", "pairs": n, "margin": delta}
    if n < 2:
        return part | {"verdict": INCONCLUSIVE, "more_seeds": None if n == 0 else 1,
                       "why": "paired by seed: no seed with both frameworks finished" if n == 0 else
                              "paired by seed: one seed pair gives no interval"}
    diff = a - b
    if np.ptp(diff) == 0:  # e.g. bit-identical frameworks: a constant difference decides
        inside = abs(float(diff[0])) < delta
        return part | {"verdict": REPRODUCED if inside else NOT_REPRODUCED, "sd": 0.0,
                       "mean_difference": float(diff[0]),
                       "p_value": 0.0 if inside else math.nan,
                       "why": f"paired by seed, the difference is {pts(float(diff[0]))} for all "
                              f"{n} seeds"}
    tost = _quiet(stats.tost_paired, a, b, delta, ALPHA)
    interval = _quiet(stats.paired_difference, a, b)
    mean, sd = float(diff.mean()), float(diff.std(ddof=1))
    part |= {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_difference": mean,
             "sd": sd, "ci90": tost.ci.to_dict(), "difference": interval.to_dict(),
             "tost_p": tost.p_value}
    if tost.equivalent:
        return part | {"verdict": REPRODUCED, "p_value": tost.p_value,
                       "why": f"paired by seed, mean difference {pts(mean)} over {n} seeds, 90% "
                              f"interval [{pts(tost.ci.low)}, {pts(tost.ci.high)}] inside +-"
                              f"{100 * delta:.2f}"}
    if not interval.contains(0.0) and abs(mean) > delta:
        return part | {"verdict": NOT_REPRODUCED,
                       "why": f"paired by seed, mean difference {pts(mean)} over {n} seeds "
                              f"exceeds the margin {100 * delta:.2f}; 95% interval "
                              f"[{pts(interval.low)}, {pts(interval.high)}]"}
    needed = _quiet(stats.seeds_needed, sd if sd > 0 else 1e-9, delta, mean)
    return part | {"verdict": INCONCLUSIVE,
                   "more_seeds": None if needed is None else max(needed - n, 1),
                   "why": f"paired by seed, mean difference {pts(mean)} over {n} seeds, 90% "
                          f"interval [{pts(tost.ci.low)}, {pts(tost.ci.high)}]"}


def welch_equivalence_part(a: np.ndarray, b: np.ndarray, delta: float,
                           names: tuple[str, str]) -> dict:
    """Welch TOST of mean(a) - mean(b) within +- delta: independent groups, all runs of each."""
    n_a, n_b = len(a), len(b)
    part: dict[str, Any] = {"test": "Welch TOST", "n_a": n_a, "n_b": n_b, "margin": delta}
    runs = f"{n_a} {names[0]} and {n_b} {names[1]} runs"
    if min(n_a, n_b) < 2:  # no variance for a group: no power calculation either
        missing = [name for name, n in zip(names, (n_a, n_b), strict=True) if n == 0]
        return part | {"verdict": INCONCLUSIVE, "more_seeds": None,
                       "why": f"unpaired: no finished runs yet of {' and '.join(missing)}"
                              if missing else f"unpaired: {runs}; the Welch interval needs at "
                              "least 2 runs of each"}
    mean = float(a.mean() - b.mean())
    part |= {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_difference": mean}
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # no spread in either: the difference of values decides
        inside = abs(mean) < delta
        return part | {"verdict": REPRODUCED if inside else NOT_REPRODUCED, "sd_a": 0.0,
                       "sd_b": 0.0, "p_value": 0.0 if inside else math.nan,
                       "why": f"unpaired, every run gives the same accuracy within each "
                              f"framework ({runs}): the difference is {pts(mean)}"}
    tost = _quiet(stats.tost_welch, a, b, delta, ALPHA)
    interval = _quiet(stats.welch_difference, a, b)
    sd_a, sd_b = float(a.std(ddof=1)), float(b.std(ddof=1))
    part |= {"sd_a": sd_a, "sd_b": sd_b, "ci90": tost.ci.to_dict(),
             "difference": interval.to_dict(), "tost_p": tost.p_value}
    if tost.equivalent:
        return part | {"verdict": REPRODUCED, "p_value": tost.p_value,
                       "why": f"unpaired (Welch), mean difference {pts(mean)} between {runs}, "
                              f"90% interval [{pts(tost.ci.low)}, {pts(tost.ci.high)}] inside +-"
                              f"{100 * delta:.2f}"}
    if not interval.contains(0.0) and abs(mean) > delta:
        return part | {"verdict": NOT_REPRODUCED,
                       "why": f"unpaired (Welch), mean difference {pts(mean)} between {runs} "
                              f"exceeds the margin {100 * delta:.2f}; 95% interval "
                              f"[{pts(interval.low)}, {pts(interval.high)}]"}
    # the same number of runs per framework is assumed: `needed` runs of each, so the framework
    # with fewer runs sets how many more each needs
    needed = _quiet(stats.seeds_needed_welch, sd_a, sd_b, delta, mean)
    return part | {"verdict": INCONCLUSIVE,
                   "more_seeds": None if needed is None else max(needed - min(n_a, n_b), 1),
                   "why": f"unpaired (Welch), mean difference {pts(mean)} between {runs} (sd "
                          f"{100 * sd_a:.2f} and {100 * sd_b:.2f} points), 90% interval "
                          f"[{pts(tost.ci.low)}, {pts(tost.ci.high)}]"}


def decide_equivalence(claim: Claim, protocol: Protocol, table, reading) -> Verdict:
    """Every pair of the claim's frameworks, in its order: paired by seed between frameworks that
    pair (our ports), unpaired (Welch) where one is in UNPAIRED_FRAMEWORKS."""
    frameworks = _frameworks(claim, protocol)
    column = reading_column(reading)
    delta = claim.margin / 100
    parts = []
    for first, second in itertools.combinations(frameworks, 2):
        a = _values(table, claim.arm, first, column)
        b = _values(table, claim.arm, second, column)
        part: dict[str, Any] = {"framework": f"{first} - {second}"}
        if pairs_by_seed(first, second):
            va, vb, seeds = _paired(a, b)
            part |= {"seeds": seeds} | paired_equivalence_part(va, vb, delta)
        else:
            part |= welch_equivalence_part(a.to_numpy(), b.to_numpy(), delta, (first, second))
        parts.append(part)
    return _finish(claim, parts, f"{claim.arm}, {' vs '.join(frameworks)} within "
                   f"{claim.margin:.2f} points, {reading} reading")


def decide_ranking(claim: Claim, protocol: Protocol, table, reading, rng) -> Verdict:
    column = reading_column(reading)
    parts = []
    for framework in _frameworks(claim, protocol):
        values = {arm: _values(table, arm, framework, column) for arm in claim.arms}
        means = {arm: float(v.mean()) if len(v) else math.nan for arm, v in values.items()}
        others = [arm for arm in claim.arms if arm != claim.best]
        comparisons = {}
        for other in others:
            a, b, _ = _paired(values[claim.best], values[other])
            comparisons[other] = comparison_part(a, b, 0.0, rng)
        p_raw = [comparisons[o].get("p_value", math.nan) for o in others]
        p_holm = stats.holm(p_raw) if others else np.array([])
        beaten_by = [o for o in others if "difference" in comparisons[o]
                     and comparisons[o]["difference"]["high"] < 0]
        part = {"framework": framework, "means": means,
                "comparisons": {o: comparisons[o] | {"p_holm": float(p)}
                                for o, p in zip(others, p_holm, strict=True)}}
        if others and all(np.isfinite(p_holm)) and all(p < ALPHA for p in p_holm):
            part |= {"verdict": REPRODUCED, "p_value": float(np.nanmax(p_holm)),
                     "why": f"{claim.best} beats each of {', '.join(others)} (Holm-corrected "
                            f"p <= {np.nanmax(p_holm):.3g})"}
        elif beaten_by:
            part |= {"verdict": NOT_REPRODUCED,
                     "why": f"{', '.join(beaten_by)} is better than {claim.best} "
                            "(95% interval of the difference below 0)"}
        else:
            top = max((m, a) for a, m in means.items() if math.isfinite(m)) \
                if any(math.isfinite(m) for m in means.values()) else (math.nan, None)
            more = [c.get("more_seeds") for c in comparisons.values()]
            why = (f"the differences are within the seed noise (highest mean: {top[1]} "
                   f"{pct(top[0])})" if top[1] else "no finished runs yet")
            part |= {"verdict": INCONCLUSIVE, "why": why,
                     "more_seeds": max((m for m in more if m is not None), default=None)}
        parts.append(part)
    return _finish(claim, parts, f"{claim.best} best among {', '.join(claim.arms)}, "
                   f"{reading} reading")


# ------------------------------------------------------------------------------------ all

def decide(protocol: Protocol, table: pd.DataFrame, rng: np.random.Generator,
           correct_of: Callable | None = None) -> list[Verdict]:
    """Every claim of the protocol, then Holm over the `reproduced` ones."""
    if not table.empty:
        table = table[table["protocol"] == protocol.name]
    verdicts = []
    for claim in protocol.claims:
        reading = claim.reading or protocol.reading
        if claim.kind == "value":
            verdicts.append(decide_value(claim, protocol, table, reading))
        elif claim.kind == "comparison":
            verdicts.append(decide_comparison(claim, protocol, table, reading, rng, correct_of))
        elif claim.kind == "equivalence":
            verdicts.append(decide_equivalence(claim, protocol, table, reading))
        else:
            verdicts.append(decide_ranking(claim, protocol, table, reading, rng))
    return holm_over(verdicts)


def holm_over(verdicts: list[Verdict]) -> list[Verdict]:
    p = np.array([v.p_value for v in verdicts], dtype=float)
    adjusted = stats.holm(p) if len(p) else p
    for verdict, p_holm in zip(verdicts, adjusted, strict=True):
        verdict.numbers["p_holm"] = None if not np.isfinite(p_holm) else float(p_holm)
        if verdict.verdict == REPRODUCED and np.isfinite(p_holm) and p_holm >= ALPHA:
            verdict.verdict = INCONCLUSIVE
            verdict.sentence = (f"Inconclusive after Holm's correction over the report's "
                                f"{len(verdicts)} claims (adjusted p = {p_holm:.3g}): "
                                + verdict.sentence)
    return verdicts


# ------------------------------------------------------------------------- published alone

def published_intervals(protocol: Protocol, default_test_images: int) -> list[dict]:
    """Each published figure with its 95% Wilson interval from the test-set size, and whether
    it differs from the paper's figure for the same arm by more than sampling error (two
    independent binomial errors; the same test set makes this conservative)."""
    papers = {p.arm: p for p in protocol.published if p.source.kind == "paper" and p.arm}
    rows = []
    for figure in protocol.published:
        n = figure.test_images or default_test_images
        k = round(figure.value / 100 * n)
        interval = stats.wilson(k, n)
        row = {"id": figure.id, "value": figure.value / 100, "n": n, "wilson": interval.to_dict(),
               "arm": figure.arm, "reading": figure.reading, "setting": figure.setting,
               "source": figure.source.__dict__, "framework": figure.framework}
        paper = papers.get(figure.arm)
        if paper is not None and paper.id != figure.id:
            p1, p2 = paper.value / 100, figure.value / 100
            se = math.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)
            row["versus_paper"] = {"difference": p2 - p1, "se": se,
                                   "beyond_sampling_error": abs(p2 - p1) > 1.96 * se}
        rows.append(row)
    return rows
