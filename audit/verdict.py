"""Claims -> verdicts: `reproduced`, `not reproduced` or `inconclusive`, with the numbers behind
each and one plain sentence that says why (docs/statistics.md).

Inputs are the collected results table (`audit.records.collect`: one line per finished run,
accuracies as proportions) and, for the paired tests over test examples, a function that returns
a run's per-example correctness at a step (from its stored predictions). Runs of two arms, or of
our two frameworks, are paired by seed (the same seed means the same data order and
initialisation); the official code's runs pair with nothing (see UNPAIRED_FRAMEWORKS).

Rules (alpha = 0.05). `reproduced` is a one-sided 5% test of the claim and `not reproduced` its
mirror, a one-sided 5% test of the opposite claim; otherwise `inconclusive`.
- value (the mean over seeds within paper +- tolerance), per framework: `reproduced` when TOST
  [1] shows it, i.e. the 90% t-interval of the mean lies inside (paper - tol, paper + tol), p the
  larger of the two one-sided p's; `not reproduced` when the 90% t-interval lies wholly outside
  it (a one-sided t-test that the mean is beyond the tolerance on its side).
- comparison (arm A better than arm B by at least the margin), per framework: the one-sided
  paired t-test of A - B > margin; `reproduced` when the 90% interval of A - B lies above the
  margin (p < 0.05), `not reproduced` when it lies wholly below it.
- equivalence (frameworks within +- margin), for every pair of the claim's frameworks: TOST of
  the difference, paired by seed between frameworks that pair (our two ports), unpaired (Welch,
  on Hsu's degrees of freedom, min(n_a, n_b) - 1, whose size never exceeds alpha) where one of
  them does not (UNPAIRED_FRAMEWORKS: the official code); `not reproduced` when the 90% interval
  lies wholly outside (-margin, +margin).
- ranking (arm X best among arms), per framework: X against each other arm as a comparison with
  margin 0; `reproduced` when X beats every one of them, `not reproduced` when some arm beats X.
Two groups that should pair by seed but share fewer than 2 seeds, while each has at least 2
runs, are compared unpaired (Welch) instead, and the sentence says so.

Claims over several parts (frameworks, pairs of frameworks, other arms). The claim holds only
when every part holds, so it is `reproduced` when every part is, and its p-value is the largest
of its parts' (the intersection-union test [2]: no correction needed). It fails when any part
fails, so `not reproduced` takes a correction: with m opposite tests in the claim, each is made
at 0.05 / m (Bonferroni, which is Holm's first step): the 90% interval for one test, 95% for
two, 96.7% for three; a claim true in every part, at the edge of its tolerance, is then called
`not reproduced` at most 5% of the time.

Across a report: every claim carries the p-value of its test for `reproduced`, whatever its
verdict; a part with too little data to test has p = 1.0 (no evidence), never NaN, which would
drop it from the family and shrink the correction. Holm's correction [3] runs over all claims of
the report (`decide` over one protocol's claims when called alone; `holm_over` over all
protocols' for a report); the adjusted values only demote `reproduced` to `inconclusive`, and the
sentence says so. The mirror holds for `not reproduced`: every claim also carries the p-value
of its test of the opposite (corrected over its parts), and a second Holm over all claims
demotes a `not reproduced` that does not survive it; so neither verdict is wrongly given to any
claim of a report more than 5% of the time.

No verdict rests on zero spread. Identical results on every seed (a value claim's runs; both
groups of an unpaired pair; the paired difference of a comparison) measured no spread: the seed
may vary nothing (e.g. it does not reach the training), so the runs are one result repeated;
`inconclusive`, p = 1. A paired difference between frameworks that is the same on every seed
(e.g. our two ports bit-identical) is exact agreement: there is no sampling error to test, so
|difference| against the margin decides (`reproduced` inside, p = 0.0: it is certain; `not
reproduced` outside, p = 1.0), and the part carries `exact: true`.

Seeds needed (inconclusive parts): the runs per group at which the deciding test (TOST, or the
one-sided test of the opposite claim when the estimate lies beyond the tolerance) reaches 80%
power at the estimated difference and spread. Below 2 seeds (or with no spread measured) the
spread is a prior: the protocol's `seed_sd`, else the pooled spread of its arm x framework groups
with at least 2 runs that differ, else DEFAULT_SEED_SD (0.3 points); a difference of two runs
that share nothing takes sqrt(2) times it. The part records where it came from
(`spread_source`), and the sentence says it. A measured spread is itself uncertain: the seeds
needed are also given at the upper end of its one-sided 80% chi-square interval. Power computed
from observed values is optimistic.

Evidence: the statistics' warnings (a bootstrap that fell back from BCa to percentile, an
undefined interval, zero spread) are recorded in each part (`warnings`), not printed or dropped.
Randomness: claim i of a protocol draws from default_rng(SeedSequence([seed, i])), so adding a
claim changes no other claim's interval; the seed is recorded with the verdict. Within a
comparison, the tests over test examples draw from streams of their own (`example_streams`), so
the claim's other intervals are the same whether stored predictions were read or not.

References
----------
[1] D. J. Schuirmann, "A comparison of the two one-sided tests procedure and the power approach
    for assessing the equivalence of average bioavailability", J. Pharmacokinet. Biopharm. 15
    (1987).
[2] R. L. Berger, "Multiparameter hypothesis testing and acceptance sampling", Technometrics 24
    (1982).
[3] S. Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Stat. 6 (1979).
"""

from __future__ import annotations

import contextvars
import itertools
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from scipy import special

from audit import sequential, stats
from audit.protocol import Claim, Protocol
from transfg.run_files import RunFileError

T = TypeVar("T")

ALPHA = 0.05
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
BEST_OF = 5  # the paper's figure modelled as the best of this many runs
EXAMPLE_PAIRS = 5  # seed pairs tested over test examples (each a bootstrap over the test set)
POWER = 0.8  # seeds needed: the runs at which the deciding test has this power
# The seed spread to plan with when nothing better is known: 0.3 points. Published CUB figures of
# the same setting spread by about 0.2-0.4 points (docs/claims.md: 91.0-91.4 for the official
# code in the issues, 91.15 and 91.18 for the Jittor report's two frameworks), and at 0.2-0.3
# points TOST needs the 4-5 seeds docs/statistics.md ("Seeds needed") plans with.
DEFAULT_SEED_SD = 0.003
SPREAD_BOUND = 0.8  # a measured spread's upper bound: its one-sided 80% chi-square interval
# The group-sequential design `decide` applies (audit/sequential.py), or None: a fixed design.
_DESIGN: contextvars.ContextVar[sequential.Design | None] = contextvars.ContextVar(
    "sequential_design", default=None)
ZERO_SPREAD = ("no spread was measured: the seed may vary nothing (e.g. it does not reach the "
               "training), so the runs are one result repeated, and no verdict rests on zero "
               "spread")


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    sentence: str
    numbers: dict[str, Any] = field(default_factory=dict)
    parts: list[dict] = field(default_factory=list)  # per framework or pair of frameworks
    p_value: float = 1.0  # of the claim's test for `reproduced`, whatever the verdict (Holm)
    more_seeds: int | None = None  # inconclusive: seeds per group that would likely decide it
    p_not_reproduced: float = 1.0  # of its test for `not reproduced`, corrected over its parts
    warnings: list[str] = field(default_factory=list)  # the statistics' warnings, as evidence

    def to_dict(self) -> dict:
        return {"claim": self.claim.id, "kind": self.claim.kind, "text": self.claim.text,
                "verdict": self.verdict, "sentence": self.sentence, "numbers": self.numbers,
                "parts": self.parts, "p_value": self.p_value,
                "p_not_reproduced": self.p_not_reproduced, "more_seeds": self.more_seeds,
                "warnings": self.warnings}


def pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.2f}%"


def pts(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.2f} points"


def level_text(level: float) -> str:
    return f"{100 * level:.1f}".rstrip("0").rstrip(".") + "%"


def interval_text(interval: stats.Interval, unit: Callable[[float], str] = pts) -> str:
    return f"[{unit(interval.low)}, {unit(interval.high)}]"


def reading_column(reading: str) -> str:
    return "final_accuracy" if reading == "final" else "best_accuracy"


def combine(verdicts: list[str]) -> str:
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return INCONCLUSIVE


@contextmanager
def recorded_warnings() -> Iterator[list[str]]:
    """Collect the messages of the statistics' warnings raised inside (StatsWarning and
    RuntimeWarning: an undefined interval, a bootstrap that fell back from BCa to percentile, a
    numerical problem) as evidence, once each, in order; the list is filled when the block ends.
    Other warnings are passed on."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    for w in caught:
        if issubclass(w.category, stats.StatsWarning | RuntimeWarning):
            if str(w.message) not in messages:
                messages.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


# ---------------------------------------------------------------------------- runs and spread

class Runs:
    """The results table indexed once by (arm, framework), rows in seed order: the look-ups of
    every claim (plain arrays: a simulation decides thousands of tables)."""

    def __init__(self, table: pd.DataFrame):
        self.table = table
        self._columns: dict[Any, Any] = {}  # column name -> values; ("spreads", column) -> ...
        self._rows: dict[tuple[str, str], np.ndarray] = {}
        if table.empty:
            return
        seeds = self._column("seed")
        rows: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(self._column("arm"), self._column("framework"),
                                    strict=True)):
            rows.setdefault(key, []).append(i)
        order: dict[Any, tuple] = {}  # the seed rule's order: "seed 10" after "seed 9"
        for label in set(seeds.tolist()):
            order[label] = sequential.natural_key(label)
        self._rows = {key: np.array(sorted(found, key=lambda i: order[seeds[i]]))
                      for key, found in rows.items()}

    @classmethod
    def of(cls, table: pd.DataFrame | Runs) -> Runs:
        return table if isinstance(table, Runs) else cls(table)

    def _column(self, name: str) -> np.ndarray:
        if name not in self._columns:
            self._columns[name] = self.table[name].to_numpy()
        return self._columns[name]

    def array(self, arm: str, framework: str, column: str) -> np.ndarray:
        """Accuracies of one arm in one framework, in seed order."""
        rows = self._rows.get((arm, framework))
        return np.array([]) if rows is None else self._column(column)[rows].astype(float)

    def values(self, arm: str, framework: str, column: str) -> pd.Series:
        """Accuracies of one arm in one framework, indexed by seed label."""
        rows = self._rows.get((arm, framework))
        if rows is None:
            return pd.Series(dtype=float)
        return pd.Series(self._column(column)[rows].astype(float),
                         index=self._column("seed")[rows])

    def run_ids(self, arm: str, framework: str, step_column: str) -> pd.Series:
        """(run id, step) of each run of one arm in one framework, indexed by seed label."""
        rows = self._rows.get((arm, framework))
        if rows is None:
            return pd.Series(dtype=object)
        return pd.Series(list(zip(self._column("run_id")[rows], self._column(step_column)[rows],
                                  strict=True)), index=self._column("seed")[rows])

    def spreads(self, column: str) -> list[tuple[int, float]]:
        """(runs, sample SD) of every group with at least 2 runs that differ: a group whose runs
        are all identical measured no spread (its seed may not reach the training)."""
        if ("spreads", column) not in self._columns:
            values = [self._column(column)[rows].astype(float) for rows in self._rows.values()]
            self._columns[("spreads", column)] = [(len(v), float(np.std(v, ddof=1)))
                                                  for v in values if len(v) >= 2 and np.ptp(v) > 0]
        return self._columns[("spreads", column)]


@dataclass(frozen=True)
class Spread:
    """A seed-to-seed SD (proportion) to plan with, and where it came from."""

    sd: float
    source: str  # observed, protocol, pooled, default
    df: float | None = None  # degrees of freedom of a measured spread; None: declared or default

    def upper(self) -> float | None:
        """The upper end of the spread's one-sided SPREAD_BOUND chi-square interval."""
        if not self.df:
            return None
        # chdtri(df, p) is the chi-square quantile with p above it: scipy.stats.chi2.ppf(1 - p)
        return self.sd * math.sqrt(self.df / special.chdtri(self.df, SPREAD_BOUND))

    def text(self) -> str:
        sd = f"{100 * self.sd:.2f} points"
        return {"observed": f"the observed spread, {sd}",
                "protocol": f"the protocol's declared seed spread (seed_sd), {sd}",
                "pooled": f"the pooled spread of the protocol's groups with 2 or more seeds, "
                          f"{sd}",
                "default": f"the audit's default seed spread, {sd}, as no group has a "
                           "measured spread yet"}[self.source]

    def to_dict(self) -> dict:
        return {"spread": self.sd, "spread_source": self.source, "spread_df": self.df}


def prior_spread(protocol: Protocol, runs: Runs, column: str) -> Spread:
    """The seed spread for groups with fewer than 2 runs: the protocol's `seed_sd`, else the
    pooled SD of its groups with at least 2 runs and a measured spread, else DEFAULT_SEED_SD."""
    if protocol.seed_sd is not None:
        return Spread(protocol.seed_sd / 100, "protocol")
    spreads = runs.spreads(column)
    df = sum(n - 1 for n, _ in spreads)
    squares = sum((n - 1) * sd**2 for n, sd in spreads)
    if df > 0 and squares > 0:
        return Spread(math.sqrt(squares / df), "pooled", float(df))
    return Spread(DEFAULT_SEED_SD, "default")


def _observed(values: np.ndarray, prior: Spread) -> Spread:
    """The group's own spread with 2 or more distinct runs, the prior otherwise."""
    if len(values) >= 2 and np.ptp(values) > 0:
        return Spread(float(np.std(values, ddof=1)), "observed", float(len(values) - 1))
    return prior


def _welch_spreads(a: np.ndarray, b: np.ndarray, prior: Spread) -> tuple[Spread, Spread]:
    """(the spread a Welch plan varies, the other group's): a group without a measured spread
    plans with the prior, and its spread is the uncertain one; else the larger spread."""
    spread_a, spread_b = _observed(a, prior), _observed(b, prior)
    if spread_a.source != "observed" or (spread_b.source == "observed" and \
            spread_a.sd >= spread_b.sd):
        return spread_a, spread_b
    return spread_b, spread_a


def _plan(needed_at: Callable[[float], int | None], spread: Spread, have: int,
          scale: float = 1.0) -> dict:
    """Seeds needed at the spread (times `scale`, e.g. sqrt(2) for a difference of two runs) and
    at the upper end of its interval, as more seeds than the `have` already run."""
    def more(sd):
        with recorded_warnings():
            needed = needed_at(scale * sd)
        return None if needed is None else max(needed - have, 1)

    upper = spread.upper()
    return spread.to_dict() | {"spread_scale": scale, "more_seeds": more(spread.sd),
                               "more_seeds_high": None if upper is None else more(upper)}


def _no_plan(spread: Spread | None = None) -> dict:
    return (spread.to_dict() if spread else {}) | {"more_seeds": None, "more_seeds_high": None}


def seeds_text(part: dict) -> str:
    """The sentence about seeds needed, with where the spread came from and its uncertainty."""
    more, high = part["more_seeds"], part.get("more_seeds_high")
    spread = Spread(part["spread"], part["spread_source"], part.get("spread_df"))
    text = (f"{'If the seed does vary the training, a' if part.get('zero_spread') else 'A'}bout "
            f"{more} more seed{'s' if more > 1 else ''} per group would likely decide it "
            f"({100 * POWER:.0f}% power at {spread.text()}")
    if part.get("spread_scale", 1.0) != 1.0:
        text += ", times sqrt(2) for the difference of two runs"
    # `high` was computed from the spread's upper end (`_plan`): where it is, upper() is too
    if high is not None and high > more and (upper := spread.upper()) is not None:
        text += (f"; up to {high} if the spread is at the upper end of its one-sided "
                 f"{100 * SPREAD_BOUND:.0f}% interval, {100 * upper:.2f} points")
    elif high is None and spread.source in ("observed", "pooled"):
        text += ("; more than the calculation tries (1000 runs) if the spread is at the upper "
                 f"end of its one-sided {100 * SPREAD_BOUND:.0f}% interval")
    if spread.source == "observed":
        text += "; a power computed from observed values is optimistic"
    return text + ")."


def _p(value: float) -> float:
    """A test's p-value, 1.0 (no evidence) where the test is undefined."""
    return 1.0 if value is None or not math.isfinite(value) else float(value)


def _side_p(p_above: float, p_below: float) -> tuple[float, str]:
    return (_p(p_above), "above") if _p(p_above) <= _p(p_below) else (_p(p_below), "below")


def _corrected(tests: int) -> str:
    return "" if tests == 1 else (f" (the 90% one corrected for the claim's {tests} tests of "
                                  "its opposite)")


def _equivalence_needed(delta: float, difference: float, alpha_not: float, welch=None):
    """Seeds needed by the deciding test at this estimated difference: TOST inside the margin,
    the one-sided test of the opposite claim outside it."""
    gap = abs(difference) - delta
    if welch is None:
        if gap < 0:
            return lambda sd: stats.seeds_needed(sd, delta, difference, ALPHA, POWER)
        if gap > 0:
            return lambda sd: stats.seeds_needed_difference(sd, gap, alpha_not, POWER)
        return lambda sd: None
    sd_other = welch
    if gap < 0:
        return lambda sd: stats.seeds_needed_welch(sd, sd_other, delta, difference, ALPHA, POWER)
    if gap > 0:
        return lambda sd: stats.seeds_needed_welch_test(sd, sd_other, gap, alpha_not, POWER)
    return lambda sd: None


# ------------------------------------------------------------------------------------ value

def value_part(values, target: float, delta: float, *, tests: int = 1,
               prior: Spread | None = None) -> dict:
    """One framework's runs against target +- delta; `tests`: the claim's number of opposite
    tests (its not-reproduced level is 0.05 / tests)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    prior = prior or Spread(DEFAULT_SEED_SD, "default")
    alpha_not = ALPHA / tests
    part: dict[str, Any] = {"seeds": n, "target": target, "tolerance": delta, "p_value": 1.0,
                            "p_not": 1.0, "alpha_not": alpha_not, "warnings": []}
    if n < 2 or np.ptp(values) == 0:
        return _value_without_interval(part, values, target, delta, prior)
    with recorded_warnings() as evidence:
        tost = stats.tost_one_sample(values, target, delta, ALPHA)
        p_not, side = _side_p(stats.t_test(values, target + delta, "greater"),
                              stats.t_test(values, target - delta, "less"))
        ci_not = stats.t_interval(values, 1 - 2 * alpha_not)
        prediction = stats.prediction_interval(values)
        best = stats.expected_best_of_n(values, BEST_OF)
        ci95 = stats.t_interval(values)
    part |= {"mean": float(values.mean()), "values": [float(v) for v in values],
             "sd": float(np.std(values, ddof=1)), "ci90": tost.ci.to_dict(),
             "ci_not": ci_not.to_dict(), "ci95": ci95.to_dict(), "tost_p": tost.p_value,
             "p_value": _p(tost.p_value), "p_not": p_not, "prediction": prediction.to_dict(),
             "paper_in_prediction": prediction.contains(target), "expected_best_of_5": best,
             "warnings": evidence}
    design = _DESIGN.get()
    if design is not None:
        return _value_sequential(design, part, values, side, prior)
    decided = _value_fixed(part, tost, ci_not, side, tests)
    return part | decided | ({} if decided["verdict"] != INCONCLUSIVE else _plan(
        _equivalence_needed(delta, part["mean"] - target, alpha_not), _observed(values, prior),
        n))


def _value_without_interval(part: dict, values: np.ndarray, target: float, delta: float,
                            prior: Spread) -> dict:
    """No runs, one run, or runs that all agree: inconclusive, with the seeds needed planned
    on the prior spread."""
    n, alpha_not = len(values), part["alpha_not"]
    if n == 0:
        return part | {"verdict": INCONCLUSIVE, "why": "no finished runs yet"} | _plan(
            _equivalence_needed(delta, 0.0, alpha_not), prior, 0)
    mean = float(values.mean())
    plan = _plan(_equivalence_needed(delta, mean - target, alpha_not), prior, n)
    part |= {"mean": mean, "values": [float(v) for v in values]}
    if n == 1:
        return part | {"verdict": INCONCLUSIVE,
                       "why": f"one seed ({pct(mean)}) gives no interval over seeds"} | plan
    return part | {"verdict": INCONCLUSIVE, "sd": 0.0, "zero_spread": True,
                   "warnings": [f"zero spread: all {n} seeds give exactly {pct(mean)}"],
                   "why": f"all {n} seeds give exactly {pct(mean)}: {ZERO_SPREAD}"} | plan


def _value_band(part: dict) -> str:
    return f"{pct(part['target'])} +- {100 * part['tolerance']:.2f}"


def _value_over(part: dict) -> str:
    return f"mean {pct(part['mean'])} over {part['seeds']} seeds"


def _value_sequential(design: sequential.Design, part: dict, values: np.ndarray, side: str,
                      prior: Spread) -> dict:
    """A value part under the group-sequential design: TOST and its opposite at every look."""
    target, delta, n = part["target"], part["tolerance"], part["seeds"]
    looks = design.looks(n)

    def test(null, alternative):
        return lambda j: stats.t_test(values[:looks[j]], null, alternative)

    seq = sequential.sequential_p(
        design, looks, [test(target - delta, "greater"), test(target + delta, "less")],
        [test(target + delta, "greater"), test(target - delta, "less")])
    decided = _sequential_verdict(
        design, part, seq, _value_over(part), f"inside {_value_band(part)}",
        f"{side} {pct(target)} beyond the tolerance {100 * delta:.2f}")
    return part | decided | (_no_plan() if decided["verdict"] != INCONCLUSIVE else _plan(
        _equivalence_needed(delta, part["mean"] - target, part["alpha_not"]),
        _observed(values, prior), n))


def _value_fixed(part: dict, tost: stats.Tost, ci_not: stats.Interval, side: str,
                 tests: int) -> dict:
    """A value part's verdict from its fixed-sample tests, and the sentence that says why."""
    target, delta, p_not = part["target"], part["tolerance"], part["p_not"]
    over, band = _value_over(part), _value_band(part)
    if tost.equivalent:
        return {"verdict": REPRODUCED, "more_seeds": None,
                "why": f"{over}, 90% interval {interval_text(tost.ci, pct)} inside {band} "
                       f"(TOST p = {tost.p_value:.3g})"}
    edge = target + delta if side == "above" else target - delta
    if p_not < part["alpha_not"]:
        return {"verdict": NOT_REPRODUCED, "more_seeds": None,
                "why": f"{over} is {abs(100 * (part['mean'] - target)):.2f} points {side} "
                       f"{pct(target)}, beyond the tolerance {100 * delta:.2f}: its "
                       f"{level_text(ci_not.level)} interval{_corrected(tests)} "
                       f"{interval_text(ci_not, pct)} lies wholly {side} {pct(edge)} "
                       f"(one-sided p = {p_not:.3g})"}
    return {"verdict": INCONCLUSIVE,
            "why": f"{over} (sd {100 * part['sd']:.2f} points), 90% interval "
                   f"{interval_text(tost.ci, pct)}: neither inside {band} nor wholly outside it"
                   + _outside_uncorrected(tost.ci, target, delta, tests, ci_not, pct)}


def _sequential_verdict(design: sequential.Design, part: dict, seq: dict, over: str, claim: str,
                        opposite: str) -> dict:
    """A part's verdict under the group-sequential design: its repeated p-values (smallest over
    its looks) replace the fixed-sample ones (kept as `fixed_p_value`, `fixed_p_not`); the
    sentence names the looks and both p's. The statistics' own warnings at earlier looks (a
    prefix with zero spread) are not evidence about the data as a whole and are not kept."""
    alpha_not = part["alpha_not"]
    final = tuple(seq["looks"])
    record = {"looks": seq["looks"], "history": seq["history"], "design": design.to_dict(),
              "pivotal": "Welch" not in part.get("test", ""),
              "boundary": sequential.nominal_boundary(design, final, ALPHA,
                                                      "Welch" not in part.get("test", "")),
              "boundary_not": sequential.nominal_boundary(design, final, alpha_not,
                                                          "Welch" not in part.get("test", ""))}
    fixed = {"fixed_p_value": part["p_value"], "fixed_p_not": part["p_not"]}
    part |= fixed | {"p_value": seq["p_value"], "p_not": seq["p_not"], "sequential": record}
    head = (f"{over}, looked at after {', '.join(map(str, final))} seeds "
            f"({design.spending} spending)")
    if seq["p_value"] < ALPHA:
        return {"verdict": REPRODUCED,
                "why": f"{head}: {claim} (sequential p = {seq['p_value']:.3g} < 0.05; "
                       f"fixed-sample p = {fixed['fixed_p_value']:.3g})"}
    if seq["p_not"] < alpha_not:
        return {"verdict": NOT_REPRODUCED,
                "why": f"{head}: {opposite} (sequential p = {seq['p_not']:.3g} < "
                       f"{alpha_not:.3g}; fixed-sample p = {fixed['fixed_p_not']:.3g})"}
    return {"verdict": INCONCLUSIVE,
            "why": f"{head}: neither {claim} (sequential p = {seq['p_value']:.3g}, fixed-sample "
                   f"{fixed['fixed_p_value']:.3g}) nor {opposite} (sequential p = "
                   f"{seq['p_not']:.3g}) at the design's boundaries"}


def _outside_uncorrected(ci90: stats.Interval, centre: float, delta: float, tests: int,
                         ci_not: stats.Interval, unit: Callable[[float], str] = pts) -> str:
    """A note when the 90% interval lies outside the band but the corrected one does not."""
    if tests > 1 and (ci90.low >= centre + delta or ci90.high <= centre - delta):
        return (f" at the claim's corrected level (its 90% interval is outside; the "
                f"{level_text(ci_not.level)} interval for its {tests} tests of the opposite, "
                f"{interval_text(ci_not, unit)}, is not)")
    return ""


def decide_value(claim: Claim, protocol: Protocol, table: pd.DataFrame | Runs,
                 reading: str) -> Verdict:
    runs = Runs.of(table)
    column = reading_column(reading)
    arm = required(claim, "arm", claim.arm)
    paper, tolerance = required(claim, "paper", claim.paper), required(claim, "tolerance",
                                                                 claim.tolerance)
    target, delta = paper / 100, tolerance / 100
    frameworks = _frameworks(claim, protocol)
    prior = prior_spread(protocol, runs, column)
    parts = []
    for framework in frameworks:
        values = runs.array(arm, framework, column)
        parts.append({"framework": framework} | value_part(values, target, delta,
                                                           tests=len(frameworks), prior=prior))
    return _finish(claim, parts, f"{arm}: paper {paper:.2f}% +- {tolerance:.2f}, {reading} "
                   "reading", len(frameworks))


def required(claim: Claim, name: str, value: T | None) -> T:
    """A field that claims of this kind have (protocol.py requires it when it reads them), e.g.
    `required(claim, "arm", claim.arm)`."""
    if value is None:
        raise ValueError(f"claim {claim.id}: a {claim.kind} claim without {name}")
    return value


def _frameworks(claim: Claim, protocol: Protocol) -> list[str]:
    return list(claim.frameworks or protocol.frameworks)


def _finish(claim: Claim, parts: list[dict], context: str, tests: int) -> Verdict:
    """The claim's verdict from its parts': reproduced when all are (p: the largest part p,
    intersection-union), not reproduced when any is (each part's opposite test already at
    0.05 / tests), otherwise inconclusive."""
    verdict = combine([p["verdict"] for p in parts])
    reasons = "; ".join(f"{p['framework']}: {p['why']}" for p in parts)
    head = {REPRODUCED: "Reproduced", NOT_REPRODUCED: "Not reproduced",
            INCONCLUSIVE: "Inconclusive"}[verdict]
    sentence = f"{head} ({context}): {reasons}."
    p_value = max((p["p_value"] for p in parts), default=1.0)
    p_not = min(1.0, tests * min((p["p_not"] for p in parts), default=1.0))
    planned = [p for p in parts if p["verdict"] == INCONCLUSIVE and p.get("more_seeds")]
    more_seeds = None
    numbers: dict[str, Any] = {"context": context, "tests_of_the_opposite": tests}
    if verdict == INCONCLUSIVE and planned:
        deciding = max(planned, key=lambda p: p["more_seeds"])
        more_seeds = deciding["more_seeds"]
        numbers |= {"more_seeds_high": deciding.get("more_seeds_high"),
                    "spread_source": deciding["spread_source"]}
        sentence += " " + seeds_text(deciding)
    evidence = []
    for part in parts:
        for message in part.get("warnings", []):
            text = f"{part['framework']}: {message}"
            if text not in evidence:
                evidence.append(text)
    return Verdict(claim, verdict, sentence, numbers, parts, p_value, more_seeds, p_not,
                   evidence)


# ------------------------------------------------------------------------------- comparisons

def comparison_part(a, b, margin: float, rng: np.random.Generator, *, tests: int = 1,
                    prior: Spread | None = None) -> dict:
    """A - B > margin, runs paired by position (by seed): a one-sided paired t-test."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    prior = prior or Spread(DEFAULT_SEED_SD, "default")
    alpha_not = ALPHA / tests
    part: dict[str, Any] = {"test": "paired t-test", "pairs": n, "margin": margin,
                            "p_value": 1.0, "p_not": 1.0, "alpha_not": alpha_not, "warnings": []}
    if n == 0:
        return part | {"verdict": INCONCLUSIVE, "why": "no seed with both runs finished"} | \
            _no_plan(prior)
    diff = a - b
    mean = float(diff.mean())
    part |= {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_difference": mean}
    needed = _comparison_needed(mean - margin, alpha_not)
    if n == 1:  # the difference of two runs: sqrt(2) seed spreads when nothing is shared
        return part | {"verdict": INCONCLUSIVE,
                       "why": f"one seed pair (difference {pts(mean)}) gives no interval"} | \
            _plan(needed, prior, n, scale=math.sqrt(2))
    if np.ptp(diff) == 0:
        return part | {"verdict": INCONCLUSIVE, "sd": 0.0, "zero_spread": True,
                       "warnings": [f"zero spread: the paired difference is {pts(mean)} on all "
                                    f"{n} seeds"],
                       "why": f"the difference is exactly {pts(mean)} on all {n} seed pairs: "
                              f"{ZERO_SPREAD}"} | _plan(needed, prior, n, scale=math.sqrt(2))
    with recorded_warnings() as evidence:
        p = _p(stats.t_test(diff, margin, "greater"))
        p_not = _p(stats.t_test(diff, margin, "less"))
        ci90 = stats.t_interval(diff, 1 - 2 * ALPHA)
        ci_not = stats.t_interval(diff, 1 - 2 * alpha_not)
        improvement = stats.probability_of_improvement(a, b, rng)
    sd = float(diff.std(ddof=1))
    part |= {"sd": sd, "ci90": ci90.to_dict(), "ci_not": ci_not.to_dict(), "p_value": p,
             "p_not": p_not, "probability_of_improvement": improvement.to_dict(),
             "warnings": evidence}
    design = _DESIGN.get()
    if design is not None:
        looks = design.looks(n)

        def test(alternative):
            return lambda j: stats.t_test(diff[:looks[j]], margin, alternative)

        decided = _sequential_verdict(design, part, sequential.sequential_p(
            design, looks, [test("greater")], [test("less")]), f"difference {pts(mean)} over "
            f"{n} seed pairs", f"above the margin {100 * margin:.2f}",
            f"below the margin {100 * margin:.2f}")
        return part | decided | (_no_plan() if decided["verdict"] != INCONCLUSIVE else _plan(
            needed, Spread(sd, "observed", float(n - 1)), n))
    return part | _comparison_verdict(part, f"over {n} seed pairs", ci90, ci_not, tests) | (
        _plan(needed, Spread(sd, "observed", float(n - 1)), n)
        if part["p_value"] >= ALPHA and p_not >= alpha_not else _no_plan())


def _comparison_needed(effect: float, alpha_not: float, welch: float | None = None):
    """Seeds needed by the one-sided test that would decide at this estimated effect (difference
    minus margin): the claim's above 0, its opposite's below (paired, or Welch with the other
    group's SD `welch`)."""
    if effect == 0:
        return lambda sd: None
    alpha = ALPHA if effect > 0 else alpha_not
    if welch is None:
        return lambda sd: stats.seeds_needed_difference(sd, abs(effect), alpha, POWER)
    return lambda sd: stats.seeds_needed_welch_test(sd, welch, abs(effect), alpha, POWER)


def _comparison_verdict(part: dict, over: str, ci90: stats.Interval, ci_not: stats.Interval,
                        tests: int) -> dict:
    mean, margin, p, p_not = (part["mean_difference"], part["margin"], part["p_value"],
                              part["p_not"])
    if p < ALPHA:
        return {"verdict": REPRODUCED,
                "why": f"better by {pts(mean)} on average {over}: its one-sided 95% lower bound "
                       f"{pts(ci90.low)} (90% interval {interval_text(ci90)}) lies above the "
                       f"margin {100 * margin:.2f} (one-sided p = {p:.3g})"}
    if p_not < part["alpha_not"]:
        return {"verdict": NOT_REPRODUCED,
                "why": f"difference {pts(mean)} {over}: its {level_text(ci_not.level)} interval"
                       f"{_corrected(tests)} {interval_text(ci_not)} lies wholly below the "
                       f"margin {100 * margin:.2f} (one-sided p = {p_not:.3g})"}
    note = ""
    if tests > 1 and ci90.high <= margin:
        note = (f"; its 90% interval lies below the margin, but not the "
                f"{level_text(ci_not.level)} interval the claim's {tests} tests of the "
                f"opposite need, {interval_text(ci_not)}")
    return {"verdict": INCONCLUSIVE,
            "why": f"difference {pts(mean)} {over}, 90% interval {interval_text(ci90)}: "
                   f"neither above the margin {100 * margin:.2f} nor wholly below it "
                   f"(one-sided p = {p:.3g}){note}"}


def welch_comparison_part(a, b, margin: float, rng: np.random.Generator, *, tests: int = 1,
                          prior: Spread | None = None, why: str = "unpaired (Welch)") -> dict:
    """mean(A) - mean(B) > margin for groups that do not pair: a one-sided Welch test (Hsu's
    degrees of freedom). Both groups need at least 2 runs."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    prior = prior or Spread(DEFAULT_SEED_SD, "default")
    alpha_not = ALPHA / tests
    mean = float(a.mean() - b.mean())
    part: dict[str, Any] = {"test": "Welch t-test", "n_a": len(a), "n_b": len(b),
                            "margin": margin, "mean_a": float(a.mean()),
                            "mean_b": float(b.mean()), "mean_difference": mean, "p_value": 1.0,
                            "p_not": 1.0, "alpha_not": alpha_not, "warnings": []}
    over = f"between {len(a)} and {len(b)} runs, {why}"
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return part | {"verdict": INCONCLUSIVE, "sd_a": 0.0, "sd_b": 0.0, "zero_spread": True,
                       "warnings": ["zero spread: every run gives the same accuracy within "
                                    "each arm"],
                       "why": f"difference {pts(mean)} {over}: every run gives the same "
                              f"accuracy within each arm: {ZERO_SPREAD}"} | _no_plan(prior)
    with recorded_warnings() as evidence:
        p = _p(stats.welch_test(a, b, margin, "greater"))
        p_not = _p(stats.welch_test(a, b, margin, "less"))
        ci90 = stats.welch_difference(a, b, 1 - 2 * ALPHA)
        ci_not = stats.welch_difference(a, b, 1 - 2 * alpha_not)
        improvement = stats.probability_of_improvement(a, b, rng)
    sd_a, sd_b = float(a.std(ddof=1)), float(b.std(ddof=1))
    part |= {"sd_a": sd_a, "sd_b": sd_b, "ci90": ci90.to_dict(), "ci_not": ci_not.to_dict(),
             "p_value": p, "p_not": p_not, "probability_of_improvement": improvement.to_dict(),
             "warnings": evidence}
    design = _DESIGN.get()
    if design is not None:
        looks = design.looks(max(len(a), len(b)))

        def test(alternative):
            return lambda j: stats.welch_test(a[:looks[j]], b[:looks[j]], margin, alternative)

        decided = _sequential_verdict(design, part, sequential.sequential_p(
            design, looks, [test("greater")], [test("less")], pivotal=False),
            f"difference {pts(mean)} {over}", f"above the margin {100 * margin:.2f}",
            f"below the margin {100 * margin:.2f}")
    else:
        decided = _comparison_verdict(part, over, ci90, ci_not, tests)
    if decided["verdict"] != INCONCLUSIVE:
        return part | decided | _no_plan()
    varying, other = _welch_spreads(a, b, prior)
    return part | decided | _plan(_comparison_needed(mean - margin, alpha_not, welch=other.sd),
                                  varying, min(len(a), len(b)))


def paired_by_seed(a: pd.Series, b: pd.Series) -> tuple[list, np.ndarray, np.ndarray]:
    """The seeds two groups share, in order, and each group's values on them."""
    seeds, in_a, in_b = np.intersect1d(a.index.to_numpy(), b.index.to_numpy(),
                                       return_indices=True)
    order = sorted(range(len(seeds)), key=lambda i: sequential.natural_key(seeds[i]))
    in_a, in_b = in_a[order], in_b[order]
    return seeds[order].tolist(), a.to_numpy()[in_a], b.to_numpy()[in_b]


def two_group_comparison(a: pd.Series, b: pd.Series, margin: float, rng, *, tests: int,
                         prior: Spread, paired: bool = True) -> dict:
    """A - B > margin: paired by seed where the groups share at least 2 seeds; unpaired (Welch)
    where they share fewer but each has at least 2 runs."""
    seeds, va, vb = paired_by_seed(a, b)
    if paired and (len(seeds) >= 2 or min(len(a), len(b)) < 2):
        return {"seeds": seeds} | comparison_part(va, vb, margin, rng, tests=tests, prior=prior)
    why = ("unpaired (Welch)" if not paired else
           f"unpaired (Welch): the arms share {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
           ", fewer than a paired test needs")
    return {"seeds": seeds} | welch_comparison_part(a.to_numpy(), b.to_numpy(), margin, rng,
                                                    tests=tests, prior=prior, why=why)


def example_streams(rng: np.random.Generator, parts: int) -> list[np.random.Generator]:
    """One generator per part for its tests over test examples, seeded by one draw from the
    claim's stream before anything else draws: whether those tests run (stored predictions
    readable or not) changes none of the claim's other intervals."""
    entropy = rng.integers(0, 2**63, size=4)
    return [np.random.default_rng(child)
            for child in np.random.SeedSequence([int(x) for x in entropy]).spawn(parts)]


def example_tests(a_runs: pd.Series, b_runs: pd.Series, correct_of: Callable | None, rng
                  ) -> list[dict]:
    """McNemar and a paired bootstrap over test examples, per seed pair (stored predictions), for
    the first EXAMPLE_PAIRS pairs; each with the warnings its bootstrap raised. A pair whose
    predictions cannot be read is listed with its `problem` (the run, the file and what is wrong),
    never dropped in silence. `correct_of` raises RunFileError for a missing or damaged eval
    file."""
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
        with recorded_warnings() as evidence:
            mcnemar = stats.mcnemar_exact(ca, cb)
            boot = stats.paired_bootstrap_examples(ca, cb, rng, n_resamples=1000)
        out.append({"seed": seed, "mcnemar_p": mcnemar.p_value, "a_only": mcnemar.a_only,
                    "b_only": mcnemar.b_only, "difference": boot.to_dict(),
                    "warnings": evidence})
    return out


def decide_comparison(claim: Claim, protocol: Protocol, table: pd.DataFrame | Runs, reading,
                      rng, correct_of) -> Verdict:
    runs = Runs.of(table)
    column = reading_column(reading)
    steps = "final_step" if reading == "final" else "best_step"
    margin = (claim.margin or 0.0) / 100
    better, worse = required(claim, "better", claim.better), required(claim, "worse", claim.worse)
    frameworks = _frameworks(claim, protocol)
    prior = prior_spread(protocol, runs, column)
    example_rngs = example_streams(rng, len(frameworks))
    parts = []
    for framework, example_rng in zip(frameworks, example_rngs, strict=True):
        part = {"framework": framework} | two_group_comparison(
            runs.values(better, framework, column),
            runs.values(worse, framework, column), margin, rng, tests=len(frameworks),
            prior=prior)
        part["examples"] = [] if correct_of is None else example_tests(
            runs.run_ids(better, framework, steps),
            runs.run_ids(worse, framework, steps), correct_of, example_rng)
        for example in part["examples"]:
            part["warnings"] += [f"seed {example['seed']}, over test examples: {m}"
                                 for m in example.get("warnings", [])]
        unread = [e for e in part["examples"] if "problem" in e]
        if unread:
            part["why"] += (f"; tests over test examples on {len(part['examples']) - len(unread)}"
                            f" of {len(part['examples'])} seed pairs ("
                            + "; ".join(f"{e['seed']}: {e['problem']}" for e in unread) + ")")
        parts.append(part)
    return _finish(claim, parts, f"{better} better than {worse} by at least "
                   f"{claim.margin or 0:.2f} points, {reading} reading", len(frameworks))


# ------------------------------------------------------------------------------- equivalence

# Frameworks whose runs do not pair by seed with any other framework's. The official code draws its
# initialisation from torch's generator, our two ports draw theirs in numpy from the run's seed
# (the same seed gives the same initialisation and data order in both ports), so the official
# code's seed k has nothing in common with our seed k. A pair that includes one of these is tested
# unpaired (Welch), on all finished runs of each framework; a pair of our ports is paired by seed.
UNPAIRED_FRAMEWORKS = frozenset({"official"})


def pairs_by_seed(first: str, second: str) -> bool:
    return first not in UNPAIRED_FRAMEWORKS and second not in UNPAIRED_FRAMEWORKS


def paired_equivalence_part(a, b, delta: float, *, tests: int = 1,
                            prior: Spread | None = None) -> dict:
    """Paired TOST of a - b within +- delta, runs paired by position (by seed)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    prior = prior or Spread(DEFAULT_SEED_SD, "default")
    alpha_not = ALPHA / tests
    part: dict[str, Any] = {"test": "paired TOST", "pairs": n, "margin": delta, "p_value": 1.0,
                            "p_not": 1.0, "alpha_not": alpha_not, "warnings": []}
    if n == 0:
        return part | {"verdict": INCONCLUSIVE,
                       "why": "paired by seed: no seed with both frameworks finished"} | _plan(
            _equivalence_needed(delta, 0.0, alpha_not), prior, 0, scale=math.sqrt(2))
    diff = a - b
    mean = float(diff.mean())
    part |= {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_difference": mean}
    if n == 1:
        return part | {"verdict": INCONCLUSIVE,
                       "why": "paired by seed: one seed pair gives no interval"} | _plan(
            _equivalence_needed(delta, mean, alpha_not), prior, n, scale=math.sqrt(2))
    if np.ptp(diff) == 0:
        return part | exact_agreement(mean, delta, n, np.ptp(a) == 0)
    with recorded_warnings() as evidence:
        tost = stats.tost_paired(a, b, delta, ALPHA)
        p_not, side = _side_p(stats.t_test(diff, delta, "greater"),
                              stats.t_test(diff, -delta, "less"))
        ci_not = stats.t_interval(diff, 1 - 2 * alpha_not)
    sd = float(diff.std(ddof=1))
    part |= {"sd": sd, "ci90": tost.ci.to_dict(), "ci_not": ci_not.to_dict(),
             "tost_p": tost.p_value, "p_value": _p(tost.p_value), "p_not": p_not,
             "warnings": evidence}
    over = f"paired by seed, mean difference {pts(mean)} over {n} seeds"
    design = _DESIGN.get()
    if design is not None:
        looks = design.looks(n)

        def test(null, alternative):
            return lambda j: stats.t_test(diff[:looks[j]], null, alternative)

        decided = _sequential_verdict(design, part, sequential.sequential_p(
            design, looks, [test(-delta, "greater"), test(delta, "less")],
            [test(delta, "greater"), test(-delta, "less")]), over,
            f"inside +-{100 * delta:.2f}", f"beyond the margin {100 * delta:.2f}")
        return part | decided | (_no_plan() if decided["verdict"] != INCONCLUSIVE else _plan(
            _equivalence_needed(delta, mean, alpha_not), Spread(sd, "observed", float(n - 1)),
            n))
    return part | _equivalence_verdict(part, over, tost.ci, ci_not, side, tests) | (
        _plan(_equivalence_needed(delta, mean, alpha_not), Spread(sd, "observed", float(n - 1)),
              n) if part["p_value"] >= ALPHA and p_not >= alpha_not else _no_plan())


def exact_agreement(difference: float, delta: float, n: int, constant: bool) -> dict:
    """A paired difference that is the same on every seed: no sampling error to test."""
    inside = abs(difference) < delta
    why = (f"paired by seed, the difference is {pts(difference)} on every one of the {n} "
           f"seeds: exact agreement, with no sampling error to test, "
           f"{'within' if inside else 'beyond'} the margin {100 * delta:.2f}")
    if constant:
        why += (" (every seed also gives the same accuracy: the seed may vary nothing, e.g. it "
                "does not reach the training)")
    return {"verdict": REPRODUCED if inside else NOT_REPRODUCED, "exact": True, "sd": 0.0,
            "mean_difference": difference, "p_value": 0.0 if inside else 1.0,
            "p_not": 1.0 if inside else 0.0, "more_seeds": None, "more_seeds_high": None,
            "warnings": [f"zero spread: the paired difference is {pts(difference)} on all {n} "
                         "seeds (exact agreement)"], "why": why}


def _equivalence_verdict(part: dict, over: str, ci90: stats.Interval, ci_not: stats.Interval,
                         side: str, tests: int) -> dict:
    delta, p_not = part["margin"], part["p_not"]
    if part["p_value"] < ALPHA:
        return {"verdict": REPRODUCED,
                "why": f"{over}, 90% interval {interval_text(ci90)} inside +-{100 * delta:.2f} "
                       f"(TOST p = {part['p_value']:.3g})"}
    if p_not < part["alpha_not"]:
        return {"verdict": NOT_REPRODUCED,
                "why": f"{over}: beyond the margin {100 * delta:.2f}, its "
                       f"{level_text(ci_not.level)} interval{_corrected(tests)} "
                       f"{interval_text(ci_not)} lies wholly {side} "
                       f"{'+' if side == 'above' else '-'}{100 * delta:.2f} "
                       f"(one-sided p = {p_not:.3g})"}
    return {"verdict": INCONCLUSIVE,
            "why": f"{over}, 90% interval {interval_text(ci90)}: neither inside "
                   f"+-{100 * delta:.2f} nor wholly outside it"
                   + _outside_uncorrected(ci90, 0.0, delta, tests, ci_not)}


def welch_equivalence_part(a, b, delta: float, names: tuple[str, str], *, tests: int = 1,
                           prior: Spread | None = None, why: str = "unpaired (Welch)") -> dict:
    """Welch TOST (Hsu's degrees of freedom) of mean(a) - mean(b) within +- delta: independent
    groups, all runs of each."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n_a, n_b = len(a), len(b)
    prior = prior or Spread(DEFAULT_SEED_SD, "default")
    alpha_not = ALPHA / tests
    part: dict[str, Any] = {"test": "Welch TOST", "n_a": n_a, "n_b": n_b, "margin": delta,
                            "p_value": 1.0, "p_not": 1.0, "alpha_not": alpha_not,
                            "warnings": []}
    runs = f"{n_a} {names[0]} and {n_b} {names[1]} runs"
    if min(n_a, n_b) < 2:  # no variance for a group: plan with the prior spread
        return _welch_equivalence_too_few(part, a, b, names, why, runs, prior)
    mean = float(a.mean() - b.mean())
    part |= {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_difference": mean}
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return part | {"verdict": INCONCLUSIVE, "sd_a": 0.0, "sd_b": 0.0, "zero_spread": True,
                       "warnings": ["zero spread: every run gives the same accuracy within "
                                    "each framework"],
                       "why": f"{why}, every run gives the same accuracy within each framework "
                              f"({runs}, difference {pts(mean)}): {ZERO_SPREAD}"} | \
            _no_plan(prior)
    with recorded_warnings() as evidence:
        tost = stats.tost_welch(a, b, delta, ALPHA)
        p_not, side = _side_p(stats.welch_test(a, b, delta, "greater"),
                              stats.welch_test(a, b, -delta, "less"))
        ci_not = stats.welch_difference(a, b, 1 - 2 * alpha_not)
    sd_a, sd_b = float(a.std(ddof=1)), float(b.std(ddof=1))
    part |= {"sd_a": sd_a, "sd_b": sd_b, "ci90": tost.ci.to_dict(), "ci_not": ci_not.to_dict(),
             "tost_p": tost.p_value, "p_value": _p(tost.p_value), "p_not": p_not,
             "warnings": evidence}
    over = f"{why}, mean difference {pts(mean)} between {runs}"
    design = _DESIGN.get()
    if design is not None:
        decided = _welch_equivalence_sequential(design, part, a, b, over)
    else:
        decided = _equivalence_verdict(part, over, tost.ci, ci_not, side, tests)
    if decided["verdict"] != INCONCLUSIVE:
        return part | decided | _no_plan()
    # the same number of runs per framework is assumed: `needed` runs of each, so the framework
    # with fewer runs sets how many more each needs
    decided["why"] = decided["why"].replace(
        f"between {runs}", f"between {runs} (sd {100 * sd_a:.2f} and {100 * sd_b:.2f} points)")
    varying, other = _welch_spreads(a, b, prior)
    return part | decided | _plan(_equivalence_needed(delta, mean, alpha_not, welch=other.sd),
                                  varying, min(n_a, n_b))


def _welch_equivalence_too_few(part: dict, a: np.ndarray, b: np.ndarray,
                               names: tuple[str, str], why: str, runs: str,
                               prior: Spread) -> dict:
    """A group with fewer than 2 runs: no Welch interval; the seeds needed are planned with the
    prior spread for it."""
    n_a, n_b = len(a), len(b)
    missing = [name for name, n in zip(names, (n_a, n_b), strict=True) if n == 0]
    difference = float(a.mean() - b.mean()) if n_a and n_b else 0.0
    varying, other = _welch_spreads(a, b, prior)
    plan = _plan(_equivalence_needed(part["margin"], difference, part["alpha_not"],
                                     welch=other.sd), varying, min(n_a, n_b))
    return part | {"verdict": INCONCLUSIVE,
                   "why": f"{why}: no finished runs yet of {' and '.join(missing)}"
                          if missing else f"{why}: {runs}; the Welch interval needs at "
                          "least 2 runs of each"} | plan


def _welch_equivalence_sequential(design: sequential.Design, part: dict, a: np.ndarray,
                                  b: np.ndarray, over: str) -> dict:
    """A Welch equivalence under the group-sequential design (a union bound over the looks:
    Welch's statistics are not pivotal)."""
    delta = part["margin"]
    looks = design.looks(max(len(a), len(b)))

    def test(null, alternative):
        return lambda j: stats.welch_test(a[:looks[j]], b[:looks[j]], null, alternative)

    return _sequential_verdict(design, part, sequential.sequential_p(
        design, looks, [test(-delta, "greater"), test(delta, "less")],
        [test(delta, "greater"), test(-delta, "less")], pivotal=False), over,
        f"inside +-{100 * delta:.2f}", f"beyond the margin {100 * delta:.2f}")


def decide_equivalence(claim: Claim, protocol: Protocol, table: pd.DataFrame | Runs, reading,
                       rng=None) -> Verdict:
    """Every pair of the claim's frameworks, in its order: paired by seed between frameworks that
    pair (our ports) and share at least 2 seeds, unpaired (Welch) otherwise."""
    runs = Runs.of(table)
    frameworks = _frameworks(claim, protocol)
    column = reading_column(reading)
    arm, margin = required(claim, "arm", claim.arm), required(claim, "margin", claim.margin)
    delta = margin / 100
    pairs = list(itertools.combinations(frameworks, 2))
    prior = prior_spread(protocol, runs, column)
    parts = []
    for first, second in pairs:
        a = runs.values(arm, first, column)
        b = runs.values(arm, second, column)
        seeds, va, vb = paired_by_seed(a, b)
        part: dict[str, Any] = {"framework": f"{first} - {second}"}
        tests = len(pairs)
        if not pairs_by_seed(first, second):
            part |= welch_equivalence_part(a.to_numpy(), b.to_numpy(), delta, (first, second),
                                           tests=tests, prior=prior)
        elif len(seeds) >= 2 or min(len(a), len(b)) < 2:
            part |= {"seeds": seeds} | paired_equivalence_part(va, vb, delta, tests=tests,
                                                               prior=prior)
        else:
            part |= {"seeds": seeds} | welch_equivalence_part(
                a.to_numpy(), b.to_numpy(), delta, (first, second), tests=tests, prior=prior,
                why=f"unpaired (Welch): the frameworks share {len(seeds)} "
                    f"seed{'s' if len(seeds) != 1 else ''}, fewer than a paired test needs")
        parts.append(part)
    return _finish(claim, parts, f"{arm}, {' vs '.join(frameworks)} within "
                   f"{margin:.2f} points, {reading} reading", len(pairs))


# ----------------------------------------------------------------------------------- ranking

def decide_ranking(claim: Claim, protocol: Protocol, table: pd.DataFrame | Runs, reading,
                   rng) -> Verdict:
    """The claimed best arm against every other, per framework: reproduced when it beats each
    (intersection-union: p = the largest one-sided p), not reproduced when some arm beats it at
    0.05 / m, m = frameworks x other arms."""
    runs = Runs.of(table)
    column = reading_column(reading)
    frameworks = _frameworks(claim, protocol)
    best = required(claim, "best", claim.best)
    others = [arm for arm in claim.arms if arm != best]
    tests = len(frameworks) * len(others)
    prior = prior_spread(protocol, runs, column)
    parts = []
    for framework in frameworks:
        values = {arm: runs.values(arm, framework, column) for arm in claim.arms}
        means = {arm: float(v.mean()) if len(v) else math.nan for arm, v in values.items()}
        comparisons = {other: two_group_comparison(values[best], values[other], 0.0, rng,
                                                   tests=tests, prior=prior)
                       for other in others}
        p_value = max(c["p_value"] for c in comparisons.values())
        p_not = min(c["p_not"] for c in comparisons.values())
        beaten_by = [o for o in others if comparisons[o]["verdict"] == NOT_REPRODUCED]
        part: dict[str, Any] = {"framework": framework, "means": means,
                                "comparisons": comparisons, "p_value": p_value, "p_not": p_not,
                                "warnings": [f"{claim.best} vs {o}: {m}" for o in others
                                             for m in comparisons[o]["warnings"]]}
        if all(c["verdict"] == REPRODUCED for c in comparisons.values()):
            lows = ", ".join(f"{o} {pts(comparisons[o]['ci90']['low'])}" for o in others)
            part |= {"verdict": REPRODUCED, "more_seeds": None,
                     "why": f"{claim.best} beats each of {', '.join(others)}: every one-sided "
                            f"95% lower bound of {claim.best} - other lies above 0 ({lows}; "
                            f"largest one-sided p = {p_value:.3g})"}
        elif beaten_by:
            worst = comparisons[beaten_by[0]]
            part |= {"verdict": NOT_REPRODUCED, "more_seeds": None,
                     "why": f"{', '.join(beaten_by)} {'is' if len(beaten_by) == 1 else 'are'} "
                            f"better than {claim.best}: the {level_text(1 - 2 * ALPHA / tests)}"
                            f" interval of {claim.best} - {beaten_by[0]}"
                            f"{_corrected(tests)} {interval_text(_interval(worst['ci_not']))}"
                            f" lies wholly below 0 (one-sided p = {worst['p_not']:.3g})"}
        else:
            top = max(((m, a) for a, m in means.items() if math.isfinite(m)),
                      default=(math.nan, None))
            planned = [c for c in comparisons.values() if c.get("more_seeds")]
            deciding = max(planned, key=lambda c: c["more_seeds"]) if planned else None
            part |= {"verdict": INCONCLUSIVE,
                     "why": f"the differences are within the seed noise (highest mean: {top[1]} "
                            f"{pct(top[0])}; largest one-sided p = {p_value:.3g})"
                            if top[1] else "no finished runs yet"}
            part |= {k: deciding[k] for k in ("more_seeds", "more_seeds_high", "spread",
                                              "spread_source", "spread_df")} \
                if deciding else _no_plan()
        parts.append(part)
    return _finish(claim, parts, f"{claim.best} best among {', '.join(claim.arms)}, "
                   f"{reading} reading", tests)


def _interval(d: dict) -> stats.Interval:
    return stats.Interval(d["estimate"], d["low"], d["high"], d["level"])


# ------------------------------------------------------------------------------------ all

def random_seed(rng: np.random.Generator | int) -> int:
    """The seed the claims' generators derive from: `rng` itself when it is a seed (an int >= 0),
    else one draw from the Generator."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2**63))
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool) and rng >= 0:
        return int(rng)
    raise TypeError(f"rng must be a numpy Generator or a seed (an int >= 0), got {rng!r}")


def claim_rng(seed: int, index: int) -> np.random.Generator:
    """Claim `index`'s own generator: adding a claim changes no other claim's draws."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def decide_claim(claim: Claim, protocol: Protocol, runs: Runs,
                 rng: np.random.Generator | None, correct_of: Callable | None = None) -> Verdict:
    reading = claim.reading or protocol.reading
    if claim.kind == "value":
        return decide_value(claim, protocol, runs, reading)
    if claim.kind == "comparison":
        return decide_comparison(claim, protocol, runs, reading, rng, correct_of)
    if claim.kind == "equivalence":
        return decide_equivalence(claim, protocol, runs, reading, rng)
    return decide_ranking(claim, protocol, runs, reading, rng)


def decide(protocol: Protocol, table: pd.DataFrame, rng: np.random.Generator | int,
           correct_of: Callable | None = None, *, holm: bool = True,
           design: sequential.Design | None = None) -> list[Verdict]:
    """Every claim of the protocol, then (with `holm`) Holm over them. A report over several
    protocols passes holm=False and calls `holm_over` once on all of their verdicts.

    `rng`: a seed or a Generator (one seed is drawn from it); claim i draws from
    `claim_rng(seed, i)`, and its verdict records [seed, i] as `numbers["random_stream"]`.
    """
    seed = random_seed(rng)
    if not table.empty:
        mine = table["protocol"].to_numpy() == protocol.name
        table = table if mine.all() else table[mine]
    runs = Runs(table)
    verdicts = []
    token = _DESIGN.set(design)
    try:
        for index, claim in enumerate(protocol.claims):
            # only comparisons and rankings draw (bootstraps); a generator costs 0.1 ms to make
            drawn = claim_rng(seed, index) if claim.kind in ("comparison", "ranking") else None
            verdict = decide_claim(claim, protocol, runs, drawn, correct_of)
            verdict.numbers["random_stream"] = [seed, index]
            if design is not None:
                verdict.numbers["sequential"] = design.to_dict()
            verdicts.append(verdict)
    finally:
        _DESIGN.reset(token)
    return holm_over(verdicts) if holm else verdicts


def holm_over(verdicts: list[Verdict]) -> list[Verdict]:
    """Holm over all claims of a report, in each direction: over every claim's p-value for
    `reproduced` and, separately, over every claim's p-value for `not reproduced` (all claims
    count, whatever their verdict). A verdict whose adjusted p is not below alpha becomes
    `inconclusive`, and its sentence says so; nothing is ever promoted."""
    family = len(verdicts)
    for attribute, key, kind in [("p_value", "p_holm", REPRODUCED),
                                 ("p_not_reproduced", "p_not_reproduced_holm", NOT_REPRODUCED)]:
        p = np.array([_p(getattr(v, attribute)) for v in verdicts], dtype=float)
        adjusted = stats.holm(p) if family else p
        for verdict, p_holm in zip(verdicts, adjusted, strict=True):
            verdict.numbers[key] = float(p_holm)
            if verdict.verdict == kind and p_holm >= ALPHA:
                verdict.verdict = INCONCLUSIVE
                verdict.numbers["demoted_by_holm"] = kind
                verdict.sentence = (
                    f"Inconclusive after Holm's correction over the report's {family} claims: "
                    f"its p for {kind} = {getattr(verdict, attribute):.3g} passes alone, the "
                    f"adjusted p = {p_holm:.3g} does not. Alone: " + verdict.sentence)
    for verdict in verdicts:
        verdict.numbers["holm_family"] = family
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
        paper = papers.get(figure.arm) if figure.arm else None
        if paper is not None and paper.id != figure.id:
            p1, p2 = paper.value / 100, figure.value / 100
            se = math.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)
            row["versus_paper"] = {"difference": p2 - p1, "se": se,
                                   "beyond_sampling_error": abs(p2 - p1) > 1.96 * se}
        rows.append(row)
    return rows
