"""`audit run --until-decided`: seeds added in stages, only where a claim is still undecided.

The first stage runs the design's first number of seeds for every arm x framework group some
claim needs; after each stage every claim is decided (`verdict.decide` under the group-
sequential design, audit/sequential.py, Holm over the protocol's claims), and the next stage
adds seeds only to the groups of the claims' parts still inconclusive, until every claim is
decided, the design's last stage (its most seeds) has run, or the next stage would exceed the
budget. Seeds come from the protocol's seed rule in its order (`plan.seed_grid`), so a run
made in a stage is the same run, with the same id, as in a fixed design.

Nothing is kept in memory between stages: `progress` derives the stages done, each look's
verdicts and the runs the next stage needs from the store alone (the runs of the first n_j
seeds of each group), so `audit run --until-decided` resumes after a kill between or inside a
stage, and after `--no-wait` on Slurm a later call continues. What the store keeps for it is
the design (`<store>/.sequential/<protocol>.json`, written once, atomically, at the first
stage: the looks' boundaries depend on it, so it cannot change afterwards) and the Slurm jobs
of the last stage submitted without waiting (so that a queued job is not submitted twice).
"""

from __future__ import annotations

import math
import re
import statistics
import sys
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from audit import verdict
from audit.plan import seed_grid
from audit.protocol import Claim, Protocol
from audit.sequential import FIRST_STAGE, STAGE_STEP, Design
from audit.store import Store
from transfg.run_files import RunFileError, load_object, read_provenance, write_json

if TYPE_CHECKING:  # (records and runner are imported where they are used)
    from audit.records import Row

RECORD = ".sequential"
FIXED_SEEDS = 5  # the fixed design the report compares with: 5 seeds per group
TERMINAL = ("done", "failed", "diverged", "unavailable")  # will not change by waiting

Group = tuple[str, str]  # (arm, framework)


# ------------------------------------------------------------------------------------ design

def design_for(protocol: Protocol, max_seeds: int | None = None) -> Design:
    """The protocol's `[sequential]` design (defaults: O'Brien-Fleming, a first stage of 3 seeds,
    2 more per stage, up to the protocol's number of seeds); `max_seeds` sets the horizon."""
    config = protocol.sequential or {}
    stages = config.get("stages")
    horizon = max_seeds or config.get("max_seeds") or (stages[-1] if stages else
                                                         len(seed_grid(protocol)))
    if "seed" not in protocol.seeds:  # separate axes: a grid is not extended
        horizon = min(horizon, len(seed_grid(protocol)))
    return Design.make(config.get("spending", "obrien-fleming"), horizon,
                       config.get("first", FIRST_STAGE), config.get("step", STAGE_STEP), stages)


def record_path(store: Store, protocol: Protocol):
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", protocol.name)
    return store.root / RECORD / f"{safe}.json"


def read_record(store: Store, protocol: Protocol) -> dict | None:
    """The store's record of the protocol's sequential design, or None (a fixed design). A
    damaged record raises RunFileError (its file and what is wrong)."""
    path = record_path(store, protocol)
    if not path.exists():
        return None
    data = load_object(path)
    try:
        Design.from_dict(data["design"])
    except (KeyError, TypeError, ValueError) as error:
        raise RunFileError(path, f"not a sequential design record ({error})") from None
    return data


def recorded_design(store: Store, protocol: Protocol) -> Design | None:
    record = read_record(store, protocol)
    return None if record is None else Design.from_dict(record["design"])


def write_record(store: Store, protocol: Protocol, design: Design, **extra) -> None:
    record = read_record(store, protocol) or {"protocol": protocol.name,
                                              "design": design.to_dict()}
    path = record_path(store, protocol)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record | extra)  # atomic: a temporary file renamed over it


# ------------------------------------------------------------------------------------ groups

def part_groups(claim: Claim, protocol: Protocol, part: dict | None = None) -> list[Group]:
    """The arm x framework groups a claim (or one of its parts) reads."""
    if part is not None:
        frameworks = [f.strip() for f in str(part["framework"]).split(" - ")]
    else:
        frameworks = list(claim.frameworks or protocol.frameworks)
    if claim.kind in ("value", "equivalence"):
        arms = [verdict.required(claim, "arm", claim.arm)]
    elif claim.kind == "comparison":
        arms = [verdict.required(claim, "better", claim.better),
                verdict.required(claim, "worse", claim.worse)]
    else:
        arms = list(claim.arms)
    return [(arm, framework) for arm in arms for framework in frameworks]


def needed_groups(protocol: Protocol) -> list[Group]:
    return list(dict.fromkeys(g for claim in protocol.claims
                              for g in part_groups(claim, protocol)))


def groups_to_extend(protocol: Protocol, verdicts: list[verdict.Verdict]) -> list[Group]:
    """The groups of the still inconclusive claims' inconclusive parts (all of a claim's groups
    when each of its parts is decided, e.g. a claim Holm's correction left inconclusive)."""
    out: list[Group] = []
    for v in verdicts:
        if v.verdict != verdict.INCONCLUSIVE:
            continue
        open_parts = [p for p in v.parts if p["verdict"] == verdict.INCONCLUSIVE]
        if open_parts:
            out += [g for p in open_parts for g in part_groups(v.claim, protocol, p)]
        else:
            out += part_groups(v.claim, protocol)
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------- progress

@dataclass
class Look:
    stage: int  # 1-based
    seeds: int  # the stage's seeds per group
    counts: dict[Group, int]  # seeds per group in the look's data (the first that many)
    extended: list[Group]  # the groups this stage added seeds to
    verdicts: list[verdict.Verdict]
    run_ids: dict[Group, list[str]]  # the done runs of each group in the look's data


@dataclass
class Progress:
    design: Design
    looks: list[Look] = field(default_factory=list)
    pending: list[Row] = field(default_factory=list)  # the runs the next stage still needs
    stage: int | None = None  # the stage `pending` belongs to
    groups: list[Group] = field(default_factory=list)  # the groups that stage extends
    stop: str = ""  # why no stage is pending: decided, last stage, cap


def seed_labels(protocol: Protocol, count: int) -> list[str]:
    return [" ".join(f"{axis} {value}" for axis, value in seed.items())
            for seed in seed_grid(protocol, count=count)]


def prefix(table: pd.DataFrame, counts: dict[Group, int], labels: list[str]) -> pd.DataFrame:
    """The runs of the first counts[g] seeds of each group g (in the seed rule's order)."""
    if table.empty:
        return table
    keep = {(arm, framework, label) for (arm, framework), n in counts.items()
            for label in labels[:n]}
    mask = [(a, f, s) in keep for a, f, s in zip(table["arm"], table["framework"],
                                                  table["seed"], strict=True)]
    return table[mask]


def progress(protocol: Protocol, rows: list[Row], table: pd.DataFrame, design: Design, *,
             seed: int = 0, cap: int | None = None, decide: Callable | None = None,
             retry: AbstractSet[str] = frozenset()) -> Progress:
    """The stages done so far, each look's verdicts, and the runs the next stage needs, from
    the matrix rows (`records.matrix` with the design's seeds) and their results table.

    `cap`: no stage beyond this many seeds (a lower cap than the design's horizon, from
    --max-seeds; the looks' boundaries stay the design's). `decide(table) -> verdicts` replaces
    the design's decision (the simulation tests pass the naive fixed-sample one). `retry`: failed
    or diverged runs to count as pending (--retry-failed).
    """
    decide = decide or (lambda view: verdict.decide(protocol, view, seed, design=design))
    labels = seed_labels(protocol, design.max_seeds)
    by_group: dict[Group, dict[str, Row]] = {}
    for row in rows:
        if row.run.protocol == protocol.name:
            by_group.setdefault((row.run.arm, row.run.framework), {})[row.run.seed_label] = row
    mine = table[table["protocol"] == protocol.name] if not table.empty else table
    result = Progress(design)
    active = needed_groups(protocol)
    counts: dict[Group, int] = {}
    for number, seeds in enumerate(design.stages, 1):
        if cap is not None and seeds > cap:
            result.stop = "cap"
            return result
        wanted = [by_group.get(g, {}).get(label) for g in active for label in labels[:seeds]]
        pending = [r for r in wanted if r is not None and (r.state not in TERMINAL
                                                           or r.run.run_id in retry)]
        if pending:
            result.pending, result.stage, result.groups = pending, number, active
            return result
        for g in active:
            counts[g] = seeds
        view = prefix(mine, counts, labels)
        verdicts = decide(view)
        run_ids = {g: [r.run.run_id for label in labels[:n]  # (a done run has its id)
                       if (r := by_group.get(g, {}).get(label)) is not None
                       and r.state == "done" and r.run.run_id is not None]
                   for g, n in counts.items()}
        result.looks.append(Look(number, seeds, dict(counts), list(active), verdicts,
                                 run_ids))
        active = groups_to_extend(protocol, verdicts)
        if not active:
            result.stop = "decided"
            return result
    result.stop = "last stage"
    return result


# -------------------------------------------------------------------------------------- cost

def compute_seconds(store: Store, run_ids) -> dict[str, float]:
    """Each done run's device-seconds (wall time x devices) from its provenance.json."""
    out = {}
    for run_id in run_ids:
        try:
            out[run_id] = float(read_provenance(store.path(run_id)).get("compute_seconds", 0.0))
        except RunFileError:
            continue
    return out


def per_run_seconds(rows: list, spent: dict[str, float],
                    calibrated: Callable | None = None) -> Callable:
    """A function row -> estimated device-seconds for one run: the median of the finished runs
    of its arm and framework, else of its framework and model, else the calibration
    (`calibrated(row)`), else None."""
    by_group: dict[tuple, list[float]] = {}
    by_model: dict[tuple, list[float]] = {}
    for row in rows:
        seconds = spent.get(row.run.run_id)
        if seconds:
            by_group.setdefault((row.run.arm, row.run.framework), []).append(seconds)
            by_model.setdefault((row.run.framework, row.run.spec.model), []).append(seconds)

    def estimate(row) -> float | None:
        for key, table in (((row.run.arm, row.run.framework), by_group),
                           ((row.run.framework, row.run.spec and row.run.spec.model), by_model)):
            if key in table:
                return statistics.median(table[key])
        return calibrated(row) if calibrated else None
    return estimate


def hours(seconds: float | None) -> str:
    return "unknown" if seconds is None or not math.isfinite(seconds) else \
        f"{seconds / 3600:.3g} device-hours"


# ------------------------------------------------------------------------------------ report

def claim_stages(protocol: Protocol, prog: Progress, spent: dict[str, float],
                 estimate: Callable[[Group], float | None]) -> list[dict]:
    """Per claim: each look's verdict and seeds, the look at which it was decided, the device-
    hours of the runs its groups had used by then, and what a fixed 5-seed design of its groups
    would have cost (measured runs, else the estimate per run of the group)."""
    out = []
    for index, claim in enumerate(protocol.claims):
        groups = part_groups(claim, protocol)
        looks, decided_at = [], None
        for look in prog.looks:
            v = look.verdicts[index]
            used = {r for g in groups for r in look.run_ids.get(g, [])}
            cost = sum(spent.get(r, 0.0) for r in used)
            looks.append({"stage": look.stage, "seeds": {f"{a} / {f}": look.counts.get((a, f), 0)
                                                         for a, f in groups},
                          "verdict": v.verdict, "p_value": v.p_value,
                          "p_not": v.p_not_reproduced, "runs": len(used),
                          "device_seconds": cost})
            if decided_at is None and v.verdict != verdict.INCONCLUSIVE:
                decided_at = len(looks) - 1
        final = looks[decided_at] if decided_at is not None else (looks[-1] if looks else None)
        fixed = 0.0
        for g in groups:
            per_run = estimate(g)
            fixed = math.nan if per_run is None or math.isnan(fixed) else \
                fixed + FIXED_SEEDS * per_run
        out.append({"claim": claim.id, "looks": looks,
                    "decided_at_stage": None if decided_at is None else
                    looks[decided_at]["stage"],
                    "runs": final["runs"] if final else 0,
                    "device_seconds": final["device_seconds"] if final else 0.0,
                    "fixed_runs": FIXED_SEEDS * len(groups), "fixed_device_seconds": fixed})
    return out


def group_estimates(rows: list, spent: dict[str, float]) -> Callable[[Group], float | None]:
    """Median device-seconds of a group's finished runs (None without any)."""
    seen: dict[Group, list[float]] = {}
    for row in rows:
        if row.run.run_id in spent and spent[row.run.run_id] > 0:
            seen.setdefault((row.run.arm, row.run.framework), []).append(spent[row.run.run_id])
    return lambda g: statistics.median(seen[g]) if g in seen else None


# ------------------------------------------------------------------------------------ runner

def _queued(store: Store, record: dict | None, pending: list) -> set[str]:
    """The pending runs whose Slurm job, submitted by an earlier `--no-wait` stage, may still
    run (pending or running in Slurm, or Slurm could not be asked): not submitted again."""
    jobs = (record or {}).get("submitted") or {}
    wanted = {r.run.run_id: str(jobs[r.run.run_id]["job"]) for r in pending
              if r.run.run_id in jobs and jobs[r.run.run_id].get("cluster") == "slurm"}
    if not wanted:
        return set()
    from audit.executors.slurm import ENDED, job_states

    states = job_states(sorted(set(wanted.values())))
    return {run_id for run_id, job in wanted.items()
            if states.get(job) not in ENDED | {"GONE"}}


def until_decided(store: Store, protocol: Protocol, inputs, *, max_seeds: int | None = None,
                  budget_hours: float | None = None, executor: str = "local",
                  jobs: int | None = None, retry_failed: bool = False,
                  keep_corrupt: bool = False, slurm: dict | None = None, wait: bool = True,
                  seed: int = 0, out=None) -> int:
    """`audit run PROTOCOL --until-decided`: stage after stage until every claim is decided,
    the design's last stage (or `max_seeds`) has run, or the next stage would take the
    device-hours spent on the protocol's runs beyond `budget_hours`. Exit status as `audit
    run`'s (1 when a run of a stage failed), 2 for a design that contradicts the store's."""
    from audit import runner
    from audit.records import collect, matrix, unavailable_reasons

    out = out or sys.stderr
    record = read_record(store, protocol)
    chosen = store_design(store, protocol, record, max_seeds, out)
    if chosen is None:
        return 2
    design, cap = chosen
    announce_design(protocol, design, cap, budget_hours, out)
    seeds = {protocol.name: design.max_seeds}
    status, told = 0, 0
    tried: set[str] = set()
    while True:
        rows = matrix(store, [protocol], inputs, max_seeds=seeds)
        unavailable = unavailable_reasons(rows)
        for reason in unavailable:
            print(f"unavailable: {reason}", file=out)
        if unavailable:
            return 2
        # from here on every row has its spec and run id
        retry = {r.run_id for r in rows if r.state in ("failed", "diverged")} - tried \
            if retry_failed else set()  # failed runs are retried once per call
        prog = progress(protocol, rows, collect(rows), design, seed=seed, cap=cap, retry=retry)
        told = tell_looks(prog, told, out)
        if not prog.pending:
            return max(status, stopped(protocol, design, cap, prog, rows, out))
        stage = pending_stage(protocol, prog)
        if record is None:
            write_record(store, protocol, design)
            record = read_record(store, protocol)
        runnable = runnable_now(store, record, prog, design, stage, out)
        if not runnable or (budget_hours is not None and beyond_budget(
                store, rows, runnable, stage, budget_hours, out)):
            return status
        if ran_already(runnable, tried, stage, out):
            return max(status, 1)
        announce_stage(prog, design, stage, runnable, out)
        tried |= {r.run_id for r in runnable}
        submitted: list = []
        code = runner.run(store, [protocol], inputs, rows=runnable, executor=executor,
                          jobs=jobs, retry_failed=retry_failed, keep_corrupt=keep_corrupt,
                          slurm=slurm, wait=wait, out=out, max_seeds=seeds,
                          submitted=submitted)
        if code == 2:
            return 2
        status = max(status, code)
        if not wait:
            record_submitted(store, protocol, design, executor, submitted, stage, out)
            return status


def store_design(store: Store, protocol: Protocol, record: dict | None, max_seeds: int | None,
                 out) -> tuple[Design, int | None] | None:
    """(the design, a lower --max-seeds to stop at or None): the store's recorded design, else
    the protocol's; None after saying why when --max-seeds would grow the recorded one."""
    if record is None:
        return design_for(protocol, max_seeds), None
    design = Design.from_dict(record["design"])
    if max_seeds is not None and max_seeds > design.max_seeds:
        print(f"error: --max-seeds {max_seeds}: the store's design for {protocol.name} "
              f"({record_path(store, protocol)}, written at its first stage) goes up to "
              f"{design.max_seeds} seeds; its boundaries depend on that horizon, so it "
              "cannot grow after the first look (a lower --max-seeds stops earlier; a new "
              "design needs another --store)", file=out)
        return None
    cap = max_seeds if max_seeds is not None and max_seeds < design.max_seeds else None
    declared = design_for(protocol, design.max_seeds)
    if protocol.sequential and declared != design:
        print(f"note: the protocol now declares {declared.text()}; the store's runs were "
              f"looked at under {design.text()}, which stays", file=out)
    return design, cap


def announce_design(protocol: Protocol, design: Design, cap: int | None,
                    budget_hours: float | None, out) -> None:
    print(f"{protocol.name}: group-sequential design: {design.text()}"
          + (f", stopping at {cap} seeds (--max-seeds)" if cap else "")
          + (f"; budget {budget_hours:g} device-hours" if budget_hours is not None else ""),
          file=out)


def tell_looks(prog: Progress, told: int, out) -> int:
    """A line for each look after the first `told`; returns how many looks are told now."""
    for look in prog.looks[told:]:
        verdicts = ", ".join(f"{v.claim.id} {v.verdict}" for v in look.verdicts)
        print(f"look after stage {look.stage} ({look.seeds} seeds per group; "
              f"{len(look.extended)} group{'s' if len(look.extended) != 1 else ''} "
              f"extended): {verdicts}", file=out)
    return len(prog.looks)


def stopped(protocol: Protocol, design: Design, cap: int | None, prog: Progress,
            rows: list[Row], out) -> int:
    """Says why no stage is pending and what it took; 1 when a run of the matrix is bad."""
    from audit.runner import BAD_STATES

    why = {"decided": "every claim is decided",
           "last stage": f"the design's last stage ({design.max_seeds} seeds) has run",
           "cap": f"--max-seeds {cap} reached"}[prog.stop]
    used = sum(1 for r in rows if r.state == "done")
    groups = len(needed_groups(protocol))
    print(f"stopped: {why}; {used} runs done (a fixed design of {groups} groups x "
          f"{FIXED_SEEDS} seeds has {groups * FIXED_SEEDS}); `audit report` shows the stages",
          file=out)
    return 1 if any(r.state in BAD_STATES for r in rows) else 0


def pending_stage(protocol: Protocol, prog: Progress) -> int:
    if prog.stage is None:  # `progress` sets the stage with its pending runs
        raise RuntimeError(f"{protocol.name}: pending runs without their stage")
    return prog.stage


def runnable_now(store: Store, record: dict | None, prog: Progress, design: Design,
                 stage: int, out) -> list[Row]:
    """The stage's pending runs neither running nor queued in Slurm (said when there is none)."""
    queued = _queued(store, record, prog.pending)
    running = [r for r in prog.pending if r.state == "running" or r.run.run_id in queued]
    runnable = [r for r in prog.pending if r not in running]
    if not runnable:
        print(f"stage {stage} ({design.stages[stage - 1]} seeds per group): "
              f"{len(running)} runs still running or queued; run `audit run "
              "--until-decided` again when they have finished (`audit status` follows "
              "them)", file=out)
    return runnable


def beyond_budget(store: Store, rows: list[Row], runnable: list[Row], stage: int,
                  budget_hours: float, out) -> bool:
    """Whether running the stage would take the device-hours spent beyond the budget (said
    when so, and when some of its runs have no estimate yet)."""
    spent = compute_seconds(store, [r.run.run_id for r in rows if r.state == "done"])
    estimate = per_run_seconds(rows, spent)
    distinct = {r.run.run_id: r for r in runnable}  # two arms may share a run
    costs = [estimate(r) for r in distinct.values()]
    total = sum(spent.values())
    if any(c is None for c in costs):
        print(f"stage {stage}: no cost estimate yet for {sum(c is None for c in costs)} of its "
              f"runs (no finished run of their group); spent so far {hours(total)}", file=out)
        return False
    after = total + sum(costs)
    if after <= budget_hours * 3600:
        return False
    print(f"stopped: stage {stage} ({len(distinct)} runs, about {hours(sum(costs))}) would "
          f"take the spent {hours(total)} to {hours(after)}, beyond the budget of "
          f"{budget_hours:g}; `audit report` shows where the claims stand", file=out)
    return True


def ran_already(runnable: list[Row], tried: set[str], stage: int, out) -> bool:
    """Whether this call ran every runnable run of the stage already (and they are not done:
    said so)."""
    if not all(r.run.run_id in tried for r in runnable):
        return False
    print(f"stopped: stage {stage}: " + "; ".join(f"{r.run.label} is {r.state}"
                                                 for r in runnable)
          + " after this call ran it", file=out)
    return True


def announce_stage(prog: Progress, design: Design, stage: int, runnable: list[Row],
                   out) -> None:
    groups = ", ".join(f"{a} / {f}" for a, f in prog.groups)
    n_runs = len({r.run_id for r in runnable})  # two arms may share a run
    print(f"stage {stage}: {n_runs} runs, {design.stages[stage - 1]} seeds "
          f"per group for {groups}", file=out)


def record_submitted(store: Store, protocol: Protocol, design: Design, executor: str,
                     submitted: list, stage: int, out) -> None:
    """Keep the Slurm jobs of a stage submitted without waiting (`_queued` reads them)."""
    cluster = "slurm" if executor == "slurm" else "local"
    write_record(store, protocol, design, submitted={
        item["run_id"]: {"job": str(job.job_id), "cluster": cluster}
        for item, job in submitted})
    print(f"stage {stage} submitted; run `audit run --until-decided` again when "
          "its jobs have finished to look and go on", file=out)
