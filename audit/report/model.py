"""The report model: everything the report shows, as typed values, numbers only (accuracies and
their intervals as proportions, p-values, counts, seconds). Text appears only where it is text:
claim text, names, the verdicts' reasons and warnings, sources and quotes, problems. Formatting
(percentages, intervals, sentences) is the renderer's (`render.py`, `text.py`); the JSON export
is this model as it is (`Report`, through dataclasses.asdict).

Reads the collected results table, the verdicts, the published figures and the runs' provenance;
never the run folders' internals beyond those. `build` gathers from a run store; the numbers
follow from the results table alone (`decide_all`, `arm_summaries`), which is how
tests/audit/test_report.py rebuilds the committed example's numbers from its CSV."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit import stages, stats, verdict
from audit.plan import Inputs
from audit.protocol import Claim, Difference, Protocol
from audit.records import collect, count_states, matrix
from audit.store import Store
from transfg.data.readers import DATASETS
from transfg.run_files import CHECKPOINT, RESULT, load_object, read_eval, read_provenance

# The JSON's layout, one version for the whole file (the report model and the verdict records in
# `verdicts`). 1: the first versioned one (verdicts with p-values for every claim, Holm over all
# claims, warnings per part, the bootstrap seed). 2: the typed report model: numbers only
# (proportions, not formatted percentages), run states as counts, environment as records, each
# protocol's own paper-versus-code differences; no formatted text beside the numbers.
SCHEMA_VERSION = 2

Interval = stats.Interval  # estimate, low, high, level: proportions (or differences of them)


# ------------------------------------------------------------------------------------- model

@dataclass
class Versus:
    """A published figure against the paper's figure for the same arm."""

    difference: float  # the figure minus the paper's
    se: float  # of the difference of two independent proportions
    beyond_sampling_error: bool  # |difference| > 1.96 se


@dataclass
class Figure:
    """A published figure with its Wilson interval from the test-set size."""

    id: str
    value: float
    wilson: Interval
    n: int  # test images
    arm: str | None
    reading: str
    setting: str
    kind: str  # of its source: paper, reproduction, issue, other
    citation: str
    url: str | None  # as the protocol gives it; the renderer links only http(s)
    quote: str | None
    framework: str | None
    versus_paper: Versus | None = None


@dataclass
class ArmSummary:
    """One arm in one framework over its seeds: final and best-of-evaluations accuracies."""

    arm: str
    framework: str
    seeds: int
    final: list[float] = field(default_factory=list)  # per seed, in seed order
    best: list[float] = field(default_factory=list)
    mean: float | None = None
    sd: float | None = None  # 2 or more seeds
    ci: Interval | None = None  # the mean's 95% t-interval
    prediction: Interval | None = None  # where one new run would land (95%)
    best_mean: float | None = None
    best_ci: Interval | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ExampleTest:
    """One seed pair over the test examples: exact McNemar and a paired bootstrap, or the
    problem that kept them from running."""

    seed: str
    problem: str | None = None
    mcnemar_p: float | None = None
    a_only: int | None = None  # discordant examples only the first run gets right
    b_only: int | None = None
    difference: Interval | None = None


@dataclass
class Part:
    """One framework (or pair of frameworks) behind a verdict."""

    framework: str | None
    verdict: str
    why: str  # the verdict's reason (audit/verdict.py)
    estimate: float | None  # the mean (value claims) or the mean difference
    interval: Interval | None  # its 90% interval
    warnings: list[str] = field(default_factory=list)
    examples: list[ExampleTest] = field(default_factory=list)


@dataclass
class Look:
    """A claim at one look of a group-sequential design."""

    stage: int
    seeds: dict[str, int]  # per group ("arm / framework")
    verdict: str
    p_value: float
    p_not: float
    runs: int  # of its groups so far
    device_seconds: float


@dataclass
class ClaimStages:
    looks: list[Look]
    decided_at_stage: int | None
    runs: int  # of its groups when decided (or at the last look)
    device_seconds: float
    fixed_runs: int  # a fixed design of `fixed_seeds` per group
    fixed_device_seconds: float  # NaN where a group has no measured run


@dataclass
class ClaimView:
    """A claim, its verdict and the numbers behind it. `arms` and `frameworks` are what its
    chart shows (frameworks empty: all); `band`: a value claim's tolerance band."""

    id: str
    kind: str
    text: str
    verdict: str
    sentence: str  # the verdict's sentence (audit/verdict.py)
    p_value: float  # of its test for "reproduced"
    p_holm: float  # after Holm over the report's claims
    p_not: float  # of its test for "not reproduced"
    p_not_holm: float
    more_seeds: int | None  # inconclusive: seeds per group that would likely decide it
    parts: list[Part]
    arms: list[str]
    frameworks: list[str]
    band: tuple[float, float] | None
    stages: ClaimStages | None = None


@dataclass
class SequentialSection:
    """A protocol run in stages (`audit run --until-decided`): the design, how far it went and
    what it used, beside a fixed design of `fixed_seeds` per group."""

    design: dict[str, Any]  # audit.sequential.Design.to_dict()
    looks: int
    stop: str  # decided, last stage, cap, or "" (a stage is still to run)
    pending_stage: int | None  # the stage still to run, if any
    pending_runs: int
    runs: int
    device_seconds: float
    fixed_seeds: int
    fixed_runs: int
    fixed_device_seconds: float  # NaN where a group has no measured run


@dataclass
class Shares:
    """One source of randomness's share of the seed variance (eta squared) with its 95%
    bootstrap interval (NaN ends: too few resamples)."""

    share: float
    low: float
    high: float


@dataclass
class VarianceShares:
    arm: str
    framework: str
    runs: int
    sd: float  # NaN with one run
    shares: dict[str, Shares]


@dataclass
class GalleryImage:
    uri: str  # data:image/png;base64,...
    truth: str
    predicted: str
    correct: bool


@dataclass
class GalleryEntry:
    arm: str
    run_id: str | None
    images: list[GalleryImage]
    problems: list[str]  # checkpoints that could not be explained, each with why


@dataclass
class Deviation:
    text: str
    runs: int  # official runs that record it
    of: int  # official runs of the protocol


@dataclass
class CorruptRun:
    label: str
    problem: str | None


@dataclass
class Section:
    """One protocol: its claims, published figures, arms, seed variance, gallery, differences."""

    name: str
    title: str
    description: str
    path: str
    paper: dict[str, Any]
    dataset: str
    dataset_title: str
    test_images: int
    reading: str
    frameworks: list[str]
    seeds: dict[str, list[int]]  # per axis ("seed": every source at once)
    states: dict[str, int]  # runs of the matrix per state
    corrupt: list[CorruptRun]
    claims: list[ClaimView]
    published: list[Figure]
    arms: list[ArmSummary]
    variance: list[VarianceShares]
    gallery: list[GalleryEntry]
    differences: list[Difference]
    official_deviations: list[Deviation]
    sequential: SequentialSection | None


@dataclass(frozen=True)
class Machine:
    cpu: str | None
    cpus: int | None
    gpus: tuple[str, ...]
    driver: str | None
    cuda: str | None
    os: str | None
    python: str | None


@dataclass(frozen=True)
class Commit:
    commit: str | None
    dirty: bool


@dataclass
class Environment:
    """From the provenance of the runs in the report."""

    runs: int
    machines: list[Machine]
    commits: list[Commit]
    packages: dict[str, list[str | None]]  # versions seen per package (None: not installed)
    compute_seconds: float  # wall time x devices


@dataclass
class SummaryRow:
    protocol: str
    id: str
    text: str
    verdict: str


@dataclass
class Report:
    schema_version: int
    bootstrap_seed: int
    title: str
    generated: str  # UTC, "YYYY-MM-DD HH:MM UTC"
    summary: list[SummaryRow]
    sections: list[Section]
    environment: Environment
    rerun: list[str]  # the commands that run and report everything again
    verdicts: list[dict[str, Any]]  # every claim's verdict record (Verdict.to_dict), in order
    results: pd.DataFrame = field(repr=False)  # one line per finished run (audit/records.py)


# ---------------------------------------------------------------------------------- figures

def published_figures(protocol: Protocol) -> list[Figure]:
    n = DATASETS[protocol.dataset].counts["test"]
    figures = []
    for row in verdict.published_intervals(protocol, n):
        versus = row.get("versus_paper")
        source = row["source"]
        figures.append(Figure(
            id=row["id"], value=row["value"], wilson=Interval(**row["wilson"]), n=row["n"],
            arm=row["arm"], reading=row["reading"], setting=row["setting"], kind=source["kind"],
            citation=source["citation"], url=source.get("url"), quote=source.get("quote"),
            framework=row["framework"], versus_paper=None if versus is None else Versus(**versus)))
    return figures


def arm_summaries(protocol: Protocol, table: pd.DataFrame) -> list[ArmSummary]:
    """Per arm and framework: the seed distribution and what a single run can tell."""
    out = []
    mine = table[table["protocol"] == protocol.name] if not table.empty else table
    for arm in protocol.arms:
        for framework in protocol.frameworks:
            rows = mine[(mine["arm"] == arm) & (mine["framework"] == framework)] \
                if not mine.empty else mine
            final = rows["final_accuracy"].astype(float).to_numpy() if len(rows) else \
                np.array([])
            best = rows["best_accuracy"].astype(float).to_numpy() if len(rows) else \
                np.array([])
            out.append(arm_summary(arm, framework, final, best))
    return out


def arm_summary(arm: str, framework: str, final: np.ndarray, best: np.ndarray) -> ArmSummary:
    summary = ArmSummary(arm, framework, len(final), [float(v) for v in final],
                         [float(v) for v in best])
    if len(final) == 1:
        summary.mean, summary.best_mean = float(final[0]), float(best[0])
    if len(final) >= 2:
        with verdict.recorded_warnings() as evidence:
            summary.ci = stats.t_interval(final)
            summary.prediction = stats.prediction_interval(final)
            summary.best_ci = stats.t_interval(best)
        summary.warnings = evidence
        summary.mean, summary.best_mean = float(final.mean()), float(best.mean())
        summary.sd = float(np.std(final, ddof=1))
    return summary


# ----------------------------------------------------------------------------------- claims

def decide_all(protocols: list[Protocol], table: pd.DataFrame, seed: int,
               correct_of: Callable | None, designs: dict[str, Any]) -> list[list[verdict.Verdict]]:
    """Every claim of every protocol decided on the results table, then Holm's correction once
    over all of them; one list of verdicts per protocol. `correct_of` (per-example correctness
    from stored predictions) may be None: the tests over test examples are then left out, and
    every other number is the same (they draw from streams of their own:
    verdict.example_streams)."""
    decided = [verdict.decide(protocol, table, seed, correct_of, holm=False,
                              design=designs.get(protocol.name))
               for protocol in protocols]
    verdict.holm_over([v for verdicts in decided for v in verdicts])
    return decided


def claim_view(v: verdict.Verdict, stages_of: ClaimStages | None = None) -> ClaimView:
    claim = v.claim
    band = None
    if claim.kind == "value":
        paper = verdict.required(claim, "paper", claim.paper)
        tolerance = verdict.required(claim, "tolerance", claim.tolerance)
        band = ((paper - tolerance) / 100, (paper + tolerance) / 100)
    return ClaimView(
        id=claim.id, kind=claim.kind, text=claim.text, verdict=v.verdict, sentence=v.sentence,
        p_value=v.p_value, p_holm=v.numbers["p_holm"], p_not=v.p_not_reproduced,
        p_not_holm=v.numbers["p_not_reproduced_holm"], more_seeds=v.more_seeds,
        parts=[part_view(part) for part in v.parts], arms=involved_arms(claim),
        frameworks=list(claim.frameworks) if claim.kind == "equivalence" else [], band=band,
        stages=stages_of)


def involved_arms(claim: Claim) -> list[str]:
    return list(dict.fromkeys(a for a in (claim.arm, claim.better, claim.worse, claim.best,
                                          *claim.arms) if a))


def part_view(part: dict) -> Part:
    """One part of a verdict (audit/verdict.py's dict) as the report shows it."""
    ci = part.get("ci90")
    return Part(framework=part.get("framework"), verdict=part["verdict"], why=part["why"],
                estimate=part.get("mean_difference", part.get("mean")),
                interval=Interval(**ci) if ci else None, warnings=part.get("warnings", []),
                examples=[ExampleTest(seed=e["seed"], problem=e["problem"]) if "problem" in e
                          else ExampleTest(seed=e["seed"], mcnemar_p=e["mcnemar_p"],
                                           a_only=e["a_only"], b_only=e["b_only"],
                                           difference=Interval(**e["difference"]))
                          for e in part.get("examples", [])])


# ------------------------------------------------------------------------- seed variance

def _shares(rows: pd.DataFrame, axes: list[str]) -> dict[str, float]:
    """Each axis's sum of squares between its levels over the total sum of squares (eta
    squared: in [0, 1], the main effects of a balanced design add up to at most 1)."""
    values = rows["final_accuracy"].astype(float)
    total = float(((values - values.mean()) ** 2).sum())
    shares = {}
    for axis in axes:
        column = f"seed_{axis}"
        if column not in rows or rows[column].nunique() < 2 or not total > 0:
            continue
        groups = rows.groupby(column)["final_accuracy"]
        between = float((groups.count() * (groups.mean() - values.mean()) ** 2).sum())
        shares[axis] = between / total
    return shares


def variance_shares(protocol: Protocol, table: pd.DataFrame, rng: np.random.Generator,
                    resamples: int = 400) -> list[VarianceShares]:
    """When the protocol varies sources of randomness on separate axes: each axis's share of the
    seed variance of the final accuracy (main effects, eta squared), per arm and framework, with
    a 95% percentile bootstrap interval over the runs (resampled with replacement)."""
    axes = [a for a in protocol.seed_axes if a != "seed"]
    if not axes or table.empty:
        return []
    out = []
    mine = table[table["protocol"] == protocol.name]
    for (arm, framework), rows in mine.groupby(["arm", "framework"]):
        shares = _shares(rows, axes)
        draws: dict[str, list[float]] = {axis: [] for axis in shares}
        for _ in range(resamples if shares else 0):
            sample = rows.iloc[rng.integers(0, len(rows), len(rows))]
            again = _shares(sample, axes)
            for axis in shares:
                if axis in again and math.isfinite(again[axis]):
                    draws[axis].append(again[axis])
        found = {}
        for axis, share in shares.items():
            low, high = (np.percentile(draws[axis], [2.5, 97.5]) if len(draws[axis]) > 10
                         else (math.nan, math.nan))
            found[axis] = Shares(share, float(low), float(high))
        sd = float(rows["final_accuracy"].std(ddof=1)) if len(rows) > 1 else math.nan
        out.append(VarianceShares(str(arm), str(framework), len(rows), sd, found))
    return out


# ---------------------------------------------------------------- gallery, runs, environment

def gallery(protocol: Protocol, table: pd.DataFrame, store: Store,
            count: int = 4) -> list[GalleryEntry]:
    """For each TransFG arm with a finished run: the first test images with the patches its
    checkpoint selects, boxed (through `audit explain`, the evaluation's own transform). A run
    whose checkpoint or data cannot be explained is named in the arm's `problems`, and the next
    run of the arm is tried."""
    from audit import explain as ex
    from transfg.data.readers import read_split

    if table.empty:
        return []
    out = []
    mine = table[table["protocol"] == protocol.name]
    for arm_name, arm in protocol.arms.items():
        if arm.model.variant != "transfg":
            continue
        runs = mine[mine["arm"] == arm_name]["run_id"]
        checkpoints = [store.path(r) / CHECKPOINT for r in runs
                       if (store.path(r) / CHECKPOINT).exists()]
        if not checkpoints:
            continue
        problems: list[str] = []
        entry = GalleryEntry(arm_name, None, [], problems)
        for checkpoint in checkpoints[:3]:  # the first that explains; each failure is named
            try:
                entry = gallery_entry(ex, checkpoint, read_split, count, arm_name, problems)
                break
            except Exception as error:  # an illustration: it must not stop the report
                problems.append(f"{checkpoint.parent.parent.name}: {type(error).__name__}: "
                                f"{error}")
        out.append(entry)
    return out


def gallery_entry(ex, checkpoint: Path, read_split, count: int, arm: str,
                  problems: list[str]) -> GalleryEntry:
    import base64
    import io

    from PIL import Image

    bundle = ex.load(checkpoint)
    samples = read_split(bundle.dataset, bundle.data_root, "test")[:count]
    images = []
    for sample in samples:
        image = ex.open_image(sample.path)
        result = ex.explain(bundle, image)
        factor = max(1.0, 160 / max(image.size))
        big = image.resize((round(image.width * factor), round(image.height * factor)),
                           Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        ex.draw_boxes(big, ex.scaled(result, factor)).save(buffer, format="PNG")
        truth = (bundle.class_names[sample.label] if bundle.class_names
                 else f"class {sample.label}")
        images.append(GalleryImage("data:image/png;base64," +
                                   base64.b64encode(buffer.getvalue()).decode(), truth,
                                   result.top5[0]["name"],
                                   result.top5[0]["class"] == sample.label))
    return GalleryEntry(arm, checkpoint.parent.parent.name, images, problems)


def official_deviations(protocol: Protocol, store: Store,
                        table: pd.DataFrame) -> list[Deviation]:
    """How the official code's runs of this protocol differ from the authors' own runs (result.json
    "deviations": what cannot be made the same, the stand-ins for missing packages, the CPU),
    each with the number of runs it applies to."""
    if table.empty:
        return []
    runs = table[(table["protocol"] == protocol.name) & (table["framework"] == "official")]
    counts: dict[str, int] = {}
    for run_id in runs["run_id"]:
        found = load_object(store.path(run_id) / RESULT).get("deviations", [])
        for text in found:
            counts[str(text)] = counts.get(str(text), 0) + 1
    return [Deviation(text, n, len(runs)) for text, n in counts.items()]


def environment(store: Store, table: pd.DataFrame) -> Environment:
    """From the provenance of the runs in the report (a done run's provenance.json has passed
    its reader already: the store checks the run's identity with it)."""
    machines: dict[Machine, None] = {}
    commits: dict[Commit, None] = {}
    compute, runs = 0.0, 0
    packages: dict[str, set[str | None]] = {}
    for run_id in table["run_id"] if not table.empty else []:
        data = read_provenance(store.path(run_id))
        runs += 1
        m = data.get("machine", {})
        machines[Machine(m.get("cpu"), m.get("cpus"),
                         tuple(sorted({g["name"] for g in m.get("gpus", [])})), m.get("driver"),
                         m.get("cuda"), m.get("os"), m.get("python"))] = None
        code = data.get("code", {})
        commits[Commit(code.get("commit"), bool(code.get("dirty")))] = None
        for name, version in data.get("packages", {}).items():
            packages.setdefault(name, set()).add(version or None)
        compute += data.get("compute_seconds", 0.0)
    return Environment(runs, list(machines), list(commits),
                       {k: sorted(v, key=lambda x: (x is None, x or ""))
                        for k, v in sorted(packages.items())}, compute)


def run_states(protocol: Protocol, rows: list, in_stages: bool
               ) -> tuple[dict[str, int], list[CorruptRun]]:
    """Runs of the protocol's matrix per state, and the corrupt ones with their problem. In
    stages a missing run is one no stage has needed (yet): not counted."""
    counted = [row for row in rows
               if row.run.protocol == protocol.name and not (in_stages and row.state == "missing")]
    corrupt = [CorruptRun(row.run.label, row.problem) for row in counted if row.state == "corrupt"]
    return dict(sorted(count_states(row.state for row in counted).items())), corrupt


# ------------------------------------------------------------------------------ the report

def build(protocols: list[Protocol], store: Store, inputs: Inputs, seed: int = 0,
          correct_of: Callable | None = None) -> Report:
    """The report's whole content for these protocols and the runs in the store.

    `seed` is the bootstrap seed, recorded in the JSON: claim i of a protocol draws from
    SeedSequence([seed, i]) (`verdict.decide`), the variance shares of the j-th protocol from
    SeedSequence(seed, spawn_key=(j,)). Holm's correction runs once over all protocols' claims."""
    designs = {p.name: stages.recorded_design(store, p) for p in protocols}
    rows = matrix(store, protocols, inputs,
                  max_seeds={name: d.max_seeds for name, d in designs.items() if d})
    table = collect(rows)
    if correct_of is None:
        correct_of = stored_correct(store, table)
    decided = decide_all(protocols, table, seed, correct_of, designs)
    sections = [section(protocol, verdicts, index, table, rows, store, seed,
                        designs[protocol.name])
                for index, (protocol, verdicts) in enumerate(zip(protocols, decided,
                                                                  strict=True))]
    return Report(
        schema_version=SCHEMA_VERSION, bootstrap_seed=seed,
        title="Reproducibility audit: " + ", ".join(p.name for p in protocols),
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        summary=[SummaryRow(s.name, c.id, c.text, c.verdict) for s in sections
                 for c in s.claims],
        sections=sections, environment=environment(store, table),
        rerun=rerun_commands(protocols, designs),
        verdicts=[v.to_dict() for verdicts in decided for v in verdicts], results=table)


def section(protocol: Protocol, verdicts: list[verdict.Verdict], index: int,
            table: pd.DataFrame, rows: list, store: Store, seed: int, design) -> Section:
    """One protocol's part of the report; `index`: its place, for its own random stream."""
    sequence, claim_stages = (sequential_section(protocol, design, rows, table, store, seed)
                              if design else (None, {}))
    states, corrupt = run_states(protocol, rows, bool(design))
    variance_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    return Section(
        name=protocol.name, title=protocol.title, description=protocol.description,
        path=str(protocol.path), paper=protocol.paper, dataset=protocol.dataset,
        dataset_title=DATASETS[protocol.dataset].title,
        test_images=DATASETS[protocol.dataset].counts["test"], reading=protocol.reading,
        frameworks=list(protocol.frameworks),
        seeds={axis: list(values) for axis, values in protocol.seeds.items()},
        states=states, corrupt=corrupt,
        claims=[claim_view(v, claim_stages.get(v.claim.id)) for v in verdicts],
        published=published_figures(protocol), arms=arm_summaries(protocol, table),
        variance=variance_shares(protocol, table, variance_rng),
        gallery=gallery(protocol, table, store), differences=list(protocol.differences),
        official_deviations=official_deviations(protocol, store, table), sequential=sequence)


def rerun_commands(protocols: list[Protocol], designs: dict[str, Any]) -> list[str]:
    paths = " ".join(p.path.as_posix() for p in protocols)
    run = (f"audit run {paths}"
           + (" --until-decided" if len(protocols) == 1 and designs[protocols[0].name] else "")
           + (" --data-root DATA" if any(p.data_root is None for p in protocols) else "")
           + (" --weights ViT-B_16.npz" if any(p.weights for p in protocols) else ""))
    return [run, f"audit report {paths} --format html,pdf,json -o reports/"]


def sequential_section(protocol: Protocol, design, rows, table: pd.DataFrame, store: Store,
                       seed: int) -> tuple[SequentialSection, dict[str, ClaimStages]]:
    """The group-sequential design and, per claim, its stages: seeds per group and verdict at
    each look, the stage it was decided at, the runs and device-seconds its groups had used by
    then, and what a fixed design of 5 seeds per group would have cost (from the group's
    measured runs)."""
    progress = stages.progress(protocol, rows, table, design, seed=seed)
    done = [r.run.run_id for r in rows if r.state == "done" and r.run.protocol == protocol.name]
    spent = stages.compute_seconds(store, done)
    estimate = stages.group_estimates(rows, spent)
    claims = {item["claim"]: ClaimStages(
        looks=[Look(**look) for look in item["looks"]],
        decided_at_stage=item["decided_at_stage"], runs=item["runs"],
        device_seconds=item["device_seconds"], fixed_runs=item["fixed_runs"],
        fixed_device_seconds=item["fixed_device_seconds"])
        for item in stages.claim_stages(protocol, progress, spent, estimate)}
    groups = stages.needed_groups(protocol)
    fixed = [estimate(g) for g in groups]
    known = [f for f in fixed if f is not None]
    fixed_total = math.nan if len(known) < len(fixed) else stages.FIXED_SEEDS * sum(known)
    return SequentialSection(
        design=design.to_dict(), looks=len(progress.looks), stop=progress.stop,
        pending_stage=progress.stage if progress.pending else None,
        pending_runs=len(progress.pending), runs=len(done), device_seconds=sum(spent.values()),
        fixed_seeds=stages.FIXED_SEEDS, fixed_runs=stages.FIXED_SEEDS * len(groups),
        fixed_device_seconds=fixed_total), claims


def stored_correct(store: Store, table: pd.DataFrame) -> Callable:
    """(run_id, step) -> per-example correctness from the run's eval-<step>.npz; RunFileError
    when that file is missing, damaged or holds another number of test examples than the run
    evaluated."""
    totals = {} if table.empty else dict(zip(table["run_id"], table["test_images"], strict=True))

    def correct_of(key):
        run_id, step = key
        data = read_eval(store.path(run_id), int(step), totals.get(run_id))
        return (data["top5_classes"][:, 0] == data["label"]).astype(np.int8)
    return correct_of
