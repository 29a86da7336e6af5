"""The report model's numbers as the report prints them: percentages, intervals, p-values,
hours, and the sentences the report itself writes (a published figure against the paper's, what
one run can tell, a claim's stages, the compute). The renderer registers each as a Jinja filter
(`render.environment`); the verdicts' own sentences come from audit/verdict.py as they are.

Accuracies are proportions in the model and percentages with two decimals here; "–" stands for
a number that is missing or undefined (NaN)."""

from __future__ import annotations

import math
import re

from audit import sequential, verdict
from audit.records import tally
from audit.report.model import (
    ArmSummary,
    ClaimStages,
    Commit,
    Environment,
    Interval,
    Machine,
    SequentialSection,
    Shares,
    Versus,
)

BADGES = {verdict.REPRODUCED: "ok", verdict.NOT_REPRODUCED: "bad",
          verdict.INCONCLUSIVE: "unsure"}
SAFE_URL = re.compile(r"^https?://[^\s\"'<>]+$")
DASH = "–"


def badge(verdict_name: str) -> str:
    """The CSS class of a verdict's badge."""
    return BADGES[verdict_name]


def pct(x: float | None, digits: int = 2) -> str:
    """A proportion as a percentage: 0.917 -> "91.70"."""
    return DASH if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}"


def interval(value: Interval | None) -> str:
    """"[low, high]" in percent."""
    if value is None or not math.isfinite(value.low):
        return DASH
    return f"[{pct(value.low)}, {pct(value.high)}]"


def p(value: float) -> str:
    return f"{value:.3g}"


def points(x: float) -> str:
    """A difference of proportions in signed percentage points: 0.0027 -> "+0.27"."""
    return f"{100 * x:+.2f}"


def hours(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    return f"{seconds / 3600:.3g}"


def safe_url(url: str | None) -> str | None:
    """Only plain http(s) links become links; anything else is shown as text."""
    return url if url and SAFE_URL.match(url) else None


def joined(values) -> str:
    return ", ".join(map(str, values))


def versus_paper(versus: Versus) -> str:
    return (f"{points(versus.difference)} points from the paper's figure "
            + ("(beyond test-set sampling error)" if versus.beyond_sampling_error
               else "(within test-set sampling error)"))


def gap(arm: ArmSummary) -> str:
    """Best-of-evaluations minus final, in points."""
    assert arm.mean is not None and arm.best_mean is not None
    return points(arm.best_mean - arm.mean)


def single_run(arm: ArmSummary) -> str:
    """What one run can tell: the half-width of the 95% prediction interval."""
    if arm.prediction is None:
        return "one seed: no spread yet"
    return f"±{pct(arm.prediction.high - arm.prediction.estimate)} points"


def share(value: Shares) -> str:
    if not math.isfinite(value.low):
        return f"{100 * value.share:.0f}%"
    return f"{100 * value.share:.0f}% [{100 * value.low:.0f}, {100 * value.high:.0f}]"


def machine(m: Machine) -> str:
    gpus = ", ".join(m.gpus) or "no GPU"
    return (f"{m.cpu} ({m.cpus} CPUs), {gpus}; driver {m.driver or DASH}, CUDA "
            f"{m.cuda or DASH}; {m.os}; Python {m.python}")


def machines(env: Environment) -> list[str]:
    return sorted({machine(m) for m in env.machines})


def commit(c: Commit) -> str:
    return (c.commit or "unknown")[:12] + (" (with uncommitted changes)" if c.dirty else "")


def commits(env: Environment) -> list[str]:
    return sorted({commit(c) for c in env.commits})


def packages(env: Environment) -> dict[str, str]:
    return {name: ", ".join(v or "not installed" for v in versions)
            for name, versions in env.packages.items()}


def compute(env: Environment) -> str:
    """NeurIPS checklist item 8."""
    if not env.runs:
        return "No runs yet: only published figures are shown."
    return (f"{env.runs} finished runs used {env.compute_seconds / 3600:.2f} device-hours "
            "(wall time x devices, from provenance.json).")


def design(record: dict) -> str:
    return sequential.Design.from_dict(record).text()


def stop(s: SequentialSection) -> str:
    """Why the stages stopped, and what is still to run."""
    text = {"decided": "every claim was decided", "last stage": "the last stage ran",
            "cap": "the seed cap was reached", "": "a stage is still to run"}[s.stop]
    if s.pending_runs:
        text += f"; stage {s.pending_stage} is still to run ({s.pending_runs} runs)"
    return text


def stage_summary(claim: ClaimStages, s: SequentialSection) -> str:
    """When a claim was decided, at what cost, beside a fixed design."""
    count = len(s.design["stages"])
    decided = claim.decided_at_stage
    return ((f"Decided at stage {decided} of {count}" if decided else
             f"Undecided after {len(claim.looks)} of {count} stages")
            + f", with {claim.runs} runs ({hours(claim.device_seconds)} device-hours) of its "
              f"groups; a fixed design of {s.fixed_seeds} seeds per group: {claim.fixed_runs} "
              f"runs ({hours(claim.fixed_device_seconds)} device-hours, at its groups' measured "
              "cost per run).")


def look_seeds(seeds: dict[str, int]) -> str:
    return ", ".join(f"{group} {n}" for group, n in seeds.items())


FILTERS = {f.__name__: f for f in (
    badge, pct, interval, p, hours, safe_url, joined, versus_paper, gap, single_run, tally, share,
    machines, commits, packages, compute, design, stop, stage_summary, look_seeds)}
