"""Everything the report shows, computed here as plain values and sentences: the templates only
place them (no arithmetic in Jinja). Reads the collected results table, the verdicts, the
published figures and the runs' provenance; never the run folders' internals beyond those."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit import stages, stats, verdict
from audit.plan import Inputs
from audit.protocol import Protocol
from audit.report import charts
from audit.results import collect
from audit.runner import matrix
from audit.store import Store
from transfg.data.readers import DATASETS
from transfg.run_files import CHECKPOINT, RESULT, load_object, read_eval, read_provenance

BADGES = {verdict.REPRODUCED: "ok", verdict.NOT_REPRODUCED: "bad",
          verdict.INCONCLUSIVE: "unsure"}
# The JSON's layout. 1: the first versioned one (verdicts with p-values for every claim, Holm
# over all claims, warnings per part, the bootstrap seed).
SCHEMA_VERSION = 1
SAFE_URL = re.compile(r"^https?://[^\s\"'<>]+$")

def pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}"


def interval_text(interval: dict | None) -> str:
    if not interval or not math.isfinite(interval.get("low", math.nan)):
        return "–"
    return f"[{pct(interval['low'])}, {pct(interval['high'])}]"


def safe_url(url: str | None) -> str | None:
    """Only plain http(s) links become links; anything else is shown as text."""
    return url if url and SAFE_URL.match(url) else None


def published_rows(protocol: Protocol) -> list[dict]:
    n = DATASETS[protocol.dataset].counts["test"]
    rows = []
    for row in verdict.published_intervals(protocol, n):
        versus = row.get("versus_paper")
        source = row["source"]
        rows.append({
            "id": row["id"], "value": f"{100 * row['value']:.2f}",
            "interval": interval_text(row["wilson"]), "n": row["n"], "arm": row["arm"] or "–",
            "reading": row["reading"], "setting": row["setting"], "kind": source["kind"],
            "citation": source["citation"], "url": safe_url(source.get("url")),
            "url_text": source.get("url"), "quote": source.get("quote"),
            "framework": row["framework"],
            "versus_paper": None if versus is None else (
                f"{100 * versus['difference']:+.2f} points from the paper's figure "
                + ("(beyond test-set sampling error)" if versus["beyond_sampling_error"]
                   else "(within test-set sampling error)")),
            "_raw": row})
    return rows


def arm_summaries(protocol: Protocol, table: pd.DataFrame) -> list[dict]:
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
            summary = {"arm": arm, "framework": framework, "seeds": len(final),
                       "final_points": [100 * v for v in final],
                       "best_points": [100 * v for v in best]}
            if len(final) >= 2:
                with verdict.recorded_warnings() as evidence:
                    ci = stats.t_interval(final)
                    pi = stats.prediction_interval(final)
                    best_ci = stats.t_interval(best)
                summary["warnings"] = evidence
                sd = float(np.std(final, ddof=1))
                summary |= {
                    "mean": pct(float(final.mean())), "sd": f"{100 * sd:.2f}",
                    "ci": interval_text(ci.to_dict()), "prediction": interval_text(pi.to_dict()),
                    "range": f"{pct(final.min())} – {pct(final.max())}",
                    "best_mean": pct(float(best.mean())), "best_ci": interval_text(
                        best_ci.to_dict()),
                    "gap": f"{100 * float(best.mean() - final.mean()):+.2f}",
                    "single_run": f"±{pct(pi.high - pi.estimate)} points",
                    "_ci": ci, "_best_ci": best_ci, "_mean": float(final.mean()),
                    "_best_mean": float(best.mean())}
            elif len(final) == 1:
                summary |= {"mean": pct(float(final[0])), "sd": "–", "ci": "–",
                            "prediction": "–", "range": pct(float(final[0])),
                            "best_mean": pct(float(best[0])), "best_ci": "–",
                            "gap": f"{100 * float(best[0] - final[0]):+.2f}",
                            "single_run": "one seed: no spread yet",
                            "_mean": float(final[0]), "_best_mean": float(best[0])}
            out.append(summary)
    return out


def claim_chart(claim, protocol: Protocol, published: list[dict], arms: list[dict]) -> str:
    """The claim's arms: the paper and the published figures, then our runs per framework."""
    involved = [a for a in (claim.arm, claim.better, claim.worse, claim.best, *claim.arms)
                if a]
    rows = []
    for figure in published:
        raw = figure["_raw"]
        if raw["arm"] in involved:
            rows.append({"label": f"{figure['id']} ({figure['kind']})", "kind": figure["kind"],
                         "value": 100 * raw["value"], "low": 100 * raw["wilson"]["low"],
                         "high": 100 * raw["wilson"]["high"],
                         "marker": "D" if raw["reading"] == "best" else "o"})
    for summary in arms:
        if summary["arm"] not in dict.fromkeys(involved) or summary["seeds"] == 0:
            continue
        if claim.kind == "equivalence" and claim.frameworks and \
                summary["framework"] not in claim.frameworks:
            continue
        label = f"ours: {summary['arm']} / {summary['framework']}"
        ci = summary.get("_ci")
        rows.append({"label": label + " final", "kind": summary["framework"],
                     "value": 100 * summary["_mean"], "points": summary["final_points"],
                     "low": 100 * ci.low if ci else None, "high": 100 * ci.high if ci else None})
        best = summary.get("_best_ci")
        rows.append({"label": label + " best", "kind": summary["framework"], "marker": "D",
                     "value": 100 * summary["_best_mean"], "points": summary["best_points"],
                     "low": 100 * best.low if best else None,
                     "high": 100 * best.high if best else None})
    band = None
    if claim.kind == "value":
        band = (claim.paper - claim.tolerance, claim.paper + claim.tolerance)
    if not rows:
        return ""
    return charts.strip_chart(rows, f"{claim.id}", band)


def claim_rows(v: verdict.Verdict) -> list[dict]:
    """One table row per framework (or pair) behind a verdict, with its statistics' warnings."""
    rows = []
    for part in v.parts:
        rows.append({"framework": part.get("framework"), "verdict": part["verdict"],
                     "badge": BADGES[part["verdict"]], "why": part["why"],
                     "warnings": part.get("warnings", []),
                     "examples": [
                         {"seed": e["seed"], "problem": e["problem"]} if "problem" in e else
                         {"seed": e["seed"], "mcnemar": f"{e['mcnemar_p']:.3g}",
                          "a_only": e["a_only"], "b_only": e["b_only"],
                          "difference": interval_text(e["difference"])}
                         for e in part.get("examples", [])]})
    return rows


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
                    resamples: int = 400) -> list[dict]:
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
        text = {}
        for axis, share in shares.items():
            low, high = (np.percentile(draws[axis], [2.5, 97.5]) if len(draws[axis]) > 10
                         else (math.nan, math.nan))
            text[axis] = f"{100 * share:.0f}% [{100 * low:.0f}, {100 * high:.0f}]" \
                if math.isfinite(low) else f"{100 * share:.0f}%"
        sd = float(rows["final_accuracy"].std(ddof=1)) if len(rows) > 1 else math.nan
        out.append({"arm": arm, "framework": framework, "runs": len(rows),
                    "sd": f"{100 * sd:.2f}" if math.isfinite(sd) else "–", "shares": text})
    return out


def gallery(protocol: Protocol, table: pd.DataFrame, store: Store, count: int = 4) -> list[dict]:
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
        problems, entry = [], None
        for checkpoint in checkpoints[:3]:  # the first that explains; each failure is named
            try:
                entry = gallery_entry(ex, checkpoint, read_split, count)
                break
            except Exception as error:  # an illustration: it must not stop the report
                problems.append(f"{checkpoint.parent.parent.name}: {type(error).__name__}: "
                                f"{error}")
        out.append((entry or {"images": []}) | {"arm": arm_name, "problems": problems})
    return out


def gallery_entry(ex, checkpoint: Path, read_split, count: int) -> dict:
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
        images.append({"uri": "data:image/png;base64," +
                       base64.b64encode(buffer.getvalue()).decode(),
                       "truth": truth, "predicted": result.top5[0]["name"],
                       "correct": result.top5[0]["class"] == sample.label})
    return {"run_id": checkpoint.parent.parent.name, "images": images}


def official_deviations(protocol: Protocol, store: Store, table: pd.DataFrame) -> list[dict]:
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
    return [{"text": text, "runs": n, "of": len(runs)} for text, n in counts.items()]


def environment(store: Store, table: pd.DataFrame) -> dict:
    """From the provenance of the runs in the report (a done run's provenance.json has passed
    its reader already: the store checks the run's identity with it)."""
    machines, commits, compute, runs = set(), set(), 0.0, 0
    packages: dict[str, set[str]] = {}
    for run_id in table["run_id"] if not table.empty else []:
        data = read_provenance(store.path(run_id))
        runs += 1
        m = data.get("machine", {})
        gpus = ", ".join(sorted({g["name"] for g in m.get("gpus", [])})) or "no GPU"
        machines.add(f"{m.get('cpu')} ({m.get('cpus')} CPUs), {gpus}; driver "
                     f"{m.get('driver') or '–'}, CUDA {m.get('cuda') or '–'}; {m.get('os')}; "
                     f"Python {m.get('python')}")
        code = data.get("code", {})
        commits.add(f"{(code.get('commit') or 'unknown')[:12]}"
                    + (" (with uncommitted changes)" if code.get("dirty") else ""))
        for name, version in data.get("packages", {}).items():
            packages.setdefault(name, set()).add(version or "not installed")
        compute += data.get("compute_seconds", 0.0)
    return {"machines": sorted(machines), "commits": sorted(commits), "runs": runs,
            "packages": {k: ", ".join(sorted(v)) for k, v in sorted(packages.items())},
            "compute_hours": f"{compute / 3600:.2f}", "compute_seconds": compute}


def decide_all(protocols: list[Protocol], table: pd.DataFrame, seed: int,
               correct_of: Callable | None, designs: dict[str, Any]) -> list[list[verdict.Verdict]]:
    """Every claim of every protocol decided on the results table, then Holm's correction once
    over all of them; one list of verdicts per protocol. `correct_of` (per-example correctness
    from stored predictions) may be None: the tests over test examples are then left out, and
    every other number is the same."""
    decided = [verdict.decide(protocol, table, seed, correct_of, holm=False,
                              design=designs.get(protocol.name))
               for protocol in protocols]
    verdict.holm_over([v for verdicts in decided for v in verdicts])
    return decided


def build(protocols: list[Protocol], store: Store, inputs: Inputs, seed: int = 0,
          correct_of: Callable | None = None) -> dict:
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
    all_verdicts = [v for verdicts in decided for v in verdicts]
    sections, summary = [], []
    for index, (protocol, verdicts) in enumerate(zip(protocols, decided, strict=True)):
        published = published_rows(protocol)
        arms = arm_summaries(protocol, table)
        design = designs[protocol.name]
        sequence = sequential_section(protocol, design, rows, table, store, seed) \
            if design else None
        claims = []
        for v in verdicts:
            claims.append({"id": v.claim.id, "kind": v.claim.kind, "text": v.claim.text,
                           "verdict": v.verdict, "badge": BADGES[v.verdict],
                           "sentence": v.sentence, "rows": claim_rows(v),
                           "chart": claim_chart(v.claim, protocol, published, arms),
                           "more_seeds": v.more_seeds, "p_value": f"{v.p_value:.3g}",
                           "p_holm": f"{v.numbers['p_holm']:.3g}",
                           "p_not": f"{v.p_not_reproduced:.3g}",
                           "p_not_holm": f"{v.numbers['p_not_reproduced_holm']:.3g}",
                           "stages": sequence["claims"].get(v.claim.id) if sequence else None})
            summary.append({"protocol": protocol.name, "id": v.claim.id, "text": v.claim.text,
                            "verdict": v.verdict, "badge": BADGES[v.verdict]})
        variance_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        states: dict[str, int] = {}
        corrupt = []
        for row in rows:
            # in stages, a missing run is one no stage has needed (yet): not counted
            if row.run.protocol == protocol.name and not (design and row.state == "missing"):
                states[row.state] = states.get(row.state, 0) + 1
                if row.state == "corrupt":
                    corrupt.append({"label": row.run.label, "problem": row.problem})
        groups = [{"label": f"{a['arm']} / {a['framework']}", "kind": a["framework"],
                   "points": a["final_points"]} for a in arms if a["seeds"]]
        sections.append({
            "name": protocol.name, "title": protocol.title, "description": protocol.description,
            "path": str(protocol.path), "paper": protocol.paper,
            "paper_url": safe_url(protocol.paper.get("url")), "dataset":
            DATASETS[protocol.dataset].title, "test_images": DATASETS[protocol.dataset]
            .counts["test"], "reading": protocol.reading, "frameworks": protocol.frameworks,
            "seed_axes": {k: ", ".join(map(str, v)) for k, v in protocol.seeds.items()},
            "claims": claims, "published": published, "arms": arms,
            "states": ", ".join(f"{n} {s}" for s, n in sorted(states.items())),
            "corrupt": corrupt,
            "has_runs": bool(states.get("done")),
            "seed_chart": charts.seed_distribution(groups, f"{protocol.name}: final accuracy "
                                                           "of every seed") if groups else "",
            "variance": variance_shares(protocol, table, variance_rng),
            "gallery": gallery(protocol, table, store),
            "differences": [{"name": d.name, "text": d.text, "arm": d.arm, "claim": d.claim,
                             "tested": d.tested} for d in protocol.differences],
            "official_deviations": official_deviations(protocol, store, table),
            "sequential": sequence})
    env = environment(store, table)
    seeds_total = len(table)
    return {
        "schema_version": SCHEMA_VERSION, "bootstrap_seed": seed,
        "title": "Reproducibility audit: " + ", ".join(p.name for p in protocols),
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "summary": summary, "sections": sections, "environment": env,
        "checklist": {
            "error_bars": ("Intervals over seeds are 95% Student-t intervals of the mean; "
                           "prediction intervals show where one new run would land; a single "
                           "accuracy carries a 95% Wilson interval from the test-set size. A "
                           "seed sets the initialisation of part_layer and the head, the data "
                           "order, the augmentation and dropout (on GPU also nondeterministic "
                           "kernels); the test set is fixed, so seed intervals do not include "
                           "test-set sampling."),
            "compute": (f"{seeds_total} finished runs used {env['compute_hours']} device-hours "
                        "(wall time x devices, from provenance.json)."
                        if seeds_total else "No runs yet: only published figures are shown.")},
        "rerun": [f"audit run {' '.join(p.path.as_posix() for p in protocols)}"
                  + (" --until-decided" if len(protocols) == 1 and designs[protocols[0].name]
                     else "")
                  + (" --data-root DATA" if any(p.data_root is None for p in protocols) else "")
                  + (" --weights ViT-B_16.npz" if any(p.weights for p in protocols) else ""),
                  f"audit report {' '.join(p.path.as_posix() for p in protocols)} "
                  "--format html,pdf,json -o reports/"],
        "verdicts": [v.to_dict() for v in all_verdicts],
        "results": table,
    }


def _hours(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    return f"{seconds / 3600:.3g}"


def sequential_section(protocol: Protocol, design, rows, table: pd.DataFrame, store: Store,
                       seed: int) -> dict:
    """The group-sequential design and, per claim, its stages: seeds per group and verdict at
    each look, the stage it was decided at, the runs and device-hours its groups had used by
    then, and what a fixed design of 5 seeds per group would have cost (from the group's
    measured runs)."""
    progress = stages.progress(protocol, rows, table, design, seed=seed)
    done = [r.run.run_id for r in rows if r.state == "done" and r.run.protocol == protocol.name]
    spent = stages.compute_seconds(store, done)
    estimate = stages.group_estimates(rows, spent)
    claims = {}
    for item in stages.claim_stages(protocol, progress, spent, estimate):
        looks = [{"stage": look["stage"],
                  "seeds": ", ".join(f"{g} {n}" for g, n in look["seeds"].items()),
                  "verdict": look["verdict"], "badge": BADGES[look["verdict"]],
                  "p_value": f"{look['p_value']:.3g}", "p_not": f"{look['p_not']:.3g}",
                  "runs": look["runs"], "hours": _hours(look["device_seconds"])}
                 for look in item["looks"]]
        decided = item["decided_at_stage"]
        claims[item["claim"]] = {
            "looks": looks, "decided_at_stage": decided,
            "summary": (f"Decided at stage {decided} of {len(design.stages)}" if decided else
                        f"Undecided after {len(looks)} of {len(design.stages)} stages")
            + f", with {item['runs']} runs ({_hours(item['device_seconds'])} device-hours) of "
              f"its groups; a fixed design of {stages.FIXED_SEEDS} seeds per group: "
              f"{item['fixed_runs']} runs ({_hours(item['fixed_device_seconds'])} device-hours"
              ", at its groups' measured cost per run).",
            "figures": item}
    used = sum(spent.values())
    groups = stages.needed_groups(protocol)
    fixed = [estimate(g) for g in groups]
    known = [f for f in fixed if f is not None]
    fixed_total = math.nan if len(known) < len(fixed) else stages.FIXED_SEEDS * sum(known)
    stop = {"decided": "every claim was decided", "last stage": "the last stage ran",
            "cap": "the seed cap was reached", "": "a stage is still to run"}[progress.stop]
    pending = f"; stage {progress.stage} is still to run ({len(progress.pending)} runs)" \
        if progress.pending else ""
    return {"design": design.to_dict(), "text": design.text(),
            "looks": len(progress.looks), "stop": stop + pending,
            "runs": len(done), "hours": _hours(used),
            "fixed_runs": stages.FIXED_SEEDS * len(groups), "fixed_hours": _hours(fixed_total),
            "claims": claims}


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
