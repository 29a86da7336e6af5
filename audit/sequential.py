"""Group-sequential decisions: seeds added in stages, a verdict looked at after every stage, and
error rates that stay at 5% however many times it is looked at (issue 17).

A design (`Design`, a protocol's `[sequential]` table) names an alpha-spending function and the
stages: the cumulative number of seeds per group (arm x framework) at each look, the last being
the most seeds any group gets (`max_seeds`, the design's horizon N). At a look after n_j seeds
the information fraction is t_j = n_j / N, and the spending function says how much of the
test's alpha may have been spent by then (Lan and DeMets [1]; both one-sided, alpha = 0.05):

- O'Brien-Fleming-like: f(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)): almost nothing early
  (0.14% at 3 of 8 seeds), nearly all of alpha at the end; a fixed design's power.
- Pocock-like: f(t) = alpha ln(1 + (e - 1) t): evenly; decides early more often, needs more at
  the end.

Each one-sided test of a claim (the two of a TOST, the test of the opposite claim on either
side) is run as a group-sequential test: at look j it rejects when the nominal one-sided p of
the first n_j seeds lies below a boundary b_j, chosen so that, under the null, the probability
of crossing for the first time at look j is f(t_j) - f(t_{j-1}). With Student's t and a
handful of seeds there is no normal approximation to lean on, so the boundaries are computed
from the joint distribution of the t statistics at the looks themselves:

- one-sample and paired t-tests (value claims, comparisons and equivalences paired by seed):
  under the null (the mean exactly on the edge), the t statistics at nested sample sizes have a
  joint distribution that does not depend on the mean or the spread (it is pivotal), so it is
  simulated once, from SIMULATIONS standard normal sequences with a fixed seed (the same data
  always give the same verdict), and b_j is the matching quantile among the sequences that had
  not crossed before, less GUARD Monte Carlo standard errors (about 0.05 points of alpha at
  5%), so that the boundaries' own simulation error errs on the conservative side;
- unpaired (Welch) tests, whose joint distribution depends on the ratio of the two spreads: a
  conservative union bound, each look tested on its own at the alpha it may spend there
  (b_j = f(t_j) - f(t_{j-1}), with Hsu's degrees of freedom each look's size is at most that),
  so the crossing probability over all looks is at most alpha whatever the spreads.

What a verdict reports is the repeated p-value [2] of each test: at look j the smallest alpha
whose boundary the statistic crosses there, and the test's p is the smallest over its looks
so far. For every alpha, the probability under the null that it ever falls below alpha is at
most alpha; so it can be compared with 0.05, 0.05 / m (the claim's tests of the opposite) and
Holm's thresholds over all claims, exactly like a fixed design's p-value, and it never rises
as looks are added: a decided claim stays decided. A TOST's p at a look is the larger of its
two sides' (the intersection-union test), the opposite's the smaller.

The looks of a part with n seeds are the design's stages below n, and n itself: the looks the
runner (`audit run --until-decided`) can have taken, whatever order its stages ran in; a group
extended by another claim's stages only adds looks. Seeds are taken in the seed rule's order,
so the data at look j are the first n_j seeds.

References
----------
[1] K. K. G. Lan, D. L. DeMets, "Discrete sequential boundaries for clinical trials",
    Biometrika 70 (1983).
[2] C. Jennison, B. W. Turnbull, "Group Sequential Methods with Applications to Clinical
    Trials" (2000), ch. 9 (repeated confidence intervals and repeated p-values).
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

ALPHA = 0.05
SPENDING = ("obrien-fleming", "pocock")
SIMULATIONS = 200_000  # null sequences behind each boundary
# each look's boundary crosses this many Monte Carlo standard errors fewer of the simulated
# sequences than its share of alpha: the boundaries err on the conservative side
GUARD = 2.0
SIMULATION_SEED = 17  # the boundaries' random stream: fixed, so verdicts are reproducible
# the alphas at which boundaries are computed (a repeated p between two is interpolated on the
# log scale); below the first, p is reported as this bound
ALPHA_GRID = np.geomspace(1e-5, 1.0, 161)
FIRST_STAGE = 3  # seeds per group at the first look by default (a t-test's first with df >= 2)
STAGE_STEP = 2  # seeds added per group at each later stage by default


@dataclass(frozen=True)
class Design:
    """A group-sequential design: spending function and the cumulative seeds per group at each
    look; the last stage is the horizon N (max seeds per group)."""

    spending: str = "obrien-fleming"
    stages: tuple[int, ...] = (3, 5)
    alpha: float = ALPHA

    def __post_init__(self):
        if self.spending not in SPENDING:
            raise ValueError(f"spending {self.spending!r}; allowed: {', '.join(SPENDING)}")
        if not self.stages or any(b <= a for a, b in itertools.pairwise(self.stages)) or \
                self.stages[0] < 2:
            raise ValueError(f"stages {list(self.stages)}: increasing numbers of seeds, the "
                             "first at least 2")

    @property
    def max_seeds(self) -> int:
        return self.stages[-1]

    @classmethod
    def make(cls, spending: str = "obrien-fleming", max_seeds: int = 5,
             first: int = FIRST_STAGE, step: int = STAGE_STEP,
             stages: Sequence[int] | None = None) -> Design:
        """From explicit stages (capped at max_seeds when given) or from first, step, max."""
        if stages:  # the declared stages up to max_seeds, which is the last
            kept = [s for s in stages if s < max_seeds] if max_seeds else list(stages)
            return cls(spending, tuple(kept) + ((max_seeds,) if max_seeds else ()))
        first = min(first, max_seeds)
        return cls(spending, (*range(first, max_seeds, step), max_seeds)
                   if first < max_seeds else (max_seeds,))

    def to_dict(self) -> dict:
        return {"spending": self.spending, "stages": list(self.stages), "alpha": self.alpha,
                "max_seeds": self.max_seeds}

    @classmethod
    def from_dict(cls, data: dict) -> Design:
        return cls(data["spending"], tuple(data["stages"]), data.get("alpha", ALPHA))

    def text(self) -> str:
        name = {"obrien-fleming": "O'Brien-Fleming", "pocock": "Pocock"}[self.spending]
        return (f"{name}-type alpha spending (Lan-DeMets), looks after "
                f"{', '.join(map(str, self.stages))} seeds per group")

    def looks(self, n: int) -> list[int]:
        """The sample sizes a part with n seeds has been looked at: the stages below n, and n."""
        if n < 2:
            return []
        return [s for s in self.stages if s < n] + [n]

    def fractions(self, looks: Sequence[int]) -> tuple[float, ...]:
        horizon = max(self.max_seeds, looks[-1]) if looks else self.max_seeds
        return tuple(min(1.0, n / horizon) for n in looks)

    def spent(self, t, alpha=None) -> np.ndarray:
        """f(t; alpha): the alpha spent by information fraction t (arrays broadcast)."""
        alpha = self.alpha if alpha is None else alpha
        t, alpha = np.asarray(t, dtype=float), np.asarray(alpha, dtype=float)
        if self.spending == "pocock":
            return alpha * np.log1p((math.e - 1) * t)
        z = special.ndtri(1 - alpha / 2)
        with np.errstate(divide="ignore"):
            return 2 - 2 * special.ndtr(z / np.sqrt(t))


# ------------------------------------------------------------------------------- boundaries

@functools.lru_cache(maxsize=256)
def _null_pvalues(looks: tuple[int, ...]) -> np.ndarray:
    """(SIMULATIONS, len(looks)): the nominal one-sided p (`greater`) of a one-sample t-test at
    each look of SIMULATIONS standard normal sequences. Drawn seed by seed from one stream, so
    the looks' prefixes of two tuples see the same sequences."""
    rng = np.random.default_rng(SIMULATION_SEED)
    total = np.zeros(SIMULATIONS)
    squares = np.zeros(SIMULATIONS)
    out = np.empty((SIMULATIONS, len(looks)))
    wanted = {n: j for j, n in enumerate(looks)}
    for n in range(1, looks[-1] + 1):
        x = rng.standard_normal(SIMULATIONS)
        total += x
        squares += x * x
        if n in wanted:
            mean = total / n
            sd = np.sqrt(np.maximum(squares - n * mean * mean, 0) / (n - 1))
            t = mean / (sd / math.sqrt(n))
            out[:, wanted[n]] = special.stdtr(n - 1, -t)
    return out


@functools.lru_cache(maxsize=1024)
def boundary_curve(design: Design, looks: tuple[int, ...], pivotal: bool = True) -> np.ndarray:
    """b_k(alpha) over ALPHA_GRID for the last of `looks`: the nominal p below which the test
    rejects at that look, for a design of total level alpha (non-decreasing in alpha)."""
    t = np.array(design.fractions(looks))
    spent = design.spent(t[:, None], ALPHA_GRID[None, :])  # (looks, grid)
    increments = np.diff(np.vstack([np.zeros(len(ALPHA_GRID)), spent]), axis=0)
    increments = np.maximum(increments, 0.0)
    if not pivotal or len(looks) == 1:  # look 1 exactly (q_1 is uniform); else the union bound
        return np.maximum.accumulate(increments[-1])
    q = _null_pvalues(tuple(looks))
    curve = np.empty(len(ALPHA_GRID))
    for g in range(len(ALPHA_GRID)):
        alive = np.ones(SIMULATIONS, dtype=bool)
        bound = 0.0
        for j in range(len(looks)):
            if j > 0:
                alive &= q[:, j - 1] > bound
            expected = increments[j, g] * SIMULATIONS
            count = math.floor(expected - GUARD * math.sqrt(expected))
            survivors = q[alive, j]
            if count <= 0:
                bound = 0.0
            elif count >= survivors.size:
                bound = 1.0
            else:  # the count-th smallest p among the sequences that had not crossed
                bound = float(np.partition(survivors, count - 1)[count - 1])
        curve[g] = bound
    return np.maximum.accumulate(curve)


def repeated_p(design: Design, looks: Sequence[int], nominal: float,
               pivotal: bool = True) -> float:
    """The smallest alpha whose boundary at the last of `looks` the nominal one-sided p
    `nominal` crosses: the repeated p-value of that look."""
    if nominal is None or not math.isfinite(nominal) or nominal >= 1.0:
        return 1.0
    looks = tuple(looks)
    if len(looks) == 1:  # closed form: f(t_1; alpha) = nominal
        t = design.fractions(looks)[0]
        if design.spending == "pocock":
            return float(min(1.0, nominal / math.log1p((math.e - 1) * t)))
        return float(min(1.0, 2 - 2 * special.ndtr(math.sqrt(t) *
                                                   special.ndtri(1 - nominal / 2))))
    curve = boundary_curve(design, looks, pivotal)
    if nominal > curve[-1]:
        return 1.0
    if nominal <= curve[0]:
        return float(ALPHA_GRID[0])
    # the first grid alpha whose boundary reaches `nominal`, interpolated within its step
    g = int(np.searchsorted(curve, nominal, side="left"))
    low, high = curve[g - 1], curve[g]
    if high <= low:
        return float(ALPHA_GRID[g])
    w = (math.log(nominal) - math.log(max(low, 1e-300))) / (math.log(high) -
                                                           math.log(max(low, 1e-300)))
    w = min(max(w, 0.0), 1.0)
    return float(math.exp((1 - w) * math.log(ALPHA_GRID[g - 1]) + w * math.log(ALPHA_GRID[g])))


def nominal_boundary(design: Design, looks: Sequence[int], alpha: float,
                     pivotal: bool = True) -> float:
    """The nominal one-sided p a test must fall below at the last of `looks` to reject at total
    level `alpha` (for the report: what 'decided' takes at each stage)."""
    looks = tuple(looks)
    if len(looks) == 1:
        return float(design.spent(design.fractions(looks)[0], alpha))
    curve = boundary_curve(design, looks, pivotal)
    return float(np.exp(np.interp(math.log(alpha), np.log(ALPHA_GRID),
                                  np.log(np.maximum(curve, 1e-300)))))


# ------------------------------------------------------------------------- a part's p-values

def sequential_p(design: Design, looks: Sequence[int],
                 claim_sides: list[Callable[[int], float]],
                 opposite_sides: list[Callable[[int], float]], pivotal: bool = True) -> dict:
    """The repeated p-values of a part, over its looks: `claim_sides` are the one-sided tests
    that must all reject for the claim (a TOST's two, a comparison's one), `opposite_sides` those
    any of which rejecting refutes it; each maps a look's index to the nominal p of the data at
    that look (NaN: undefined, no evidence). Returns the part's p for `reproduced` (smallest
    over looks of the largest side's), its p for `not reproduced` (smallest over looks of the
    smallest side's) and each look's."""
    history = []
    p_value = p_not = 1.0
    for j in range(len(looks)):
        prefix = tuple(looks[:j + 1])
        with warnings.catch_warnings():  # an earlier look's data may have no spread: p = 1
            warnings.simplefilter("ignore")
            claim_p = [side(j) for side in claim_sides]
            opposite_p = [side(j) for side in opposite_sides]
        claim = max((repeated_p(design, prefix, p, pivotal) for p in claim_p), default=1.0)
        opposite = min((repeated_p(design, prefix, p, pivotal) for p in opposite_p),
                       default=1.0)
        p_value, p_not = min(p_value, claim), min(p_not, opposite)
        history.append({"seeds": looks[j], "p_value": claim, "p_not": opposite})
    return {"p_value": p_value, "p_not": p_not, "looks": list(looks), "history": history}


def natural_key(label) -> tuple:
    """A seed label's order in the seed rule ('seed 10' after 'seed 9')."""
    parts = str(label).split()
    try:
        return tuple(int(p) for p in parts[1::2])
    except ValueError:
        return (math.inf, str(label))
