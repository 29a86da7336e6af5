"""The terminal's tables: the run matrix (`audit plan`, `audit status PROTOCOL`), the whole store
(`audit status`) and the matrix priced in device-hours (`audit plan --calibrate`)."""

from __future__ import annotations

import sys

from audit.executors.progress import duration
from audit.protocol import Protocol
from audit.records import Row, count_states, estimate_seconds, tally, to_run
from audit.runner import print_inputs


def aligned(header: list[str], body: list[list]) -> list[str]:
    """The lines of a table: columns left-aligned, two spaces apart, no trailing blanks."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body, strict=True)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
            for line in [header, *body]]


def percent(accuracy: float | None) -> str:
    return "-" if accuracy is None else f"{100 * accuracy:.2f}%"


# ------------------------------------------------------------------------------ the matrix

def table(rows: list[Row], *, with_protocol: bool) -> str:
    header = (["protocol"] if with_protocol else []) + ["arm", "framework", "seed", "state",
                                                        "final", "best", "run id"]
    body = []
    for row in rows:
        r, result = row.run, row.result
        body.append(([r.protocol] if with_protocol else []) + [
            r.arm, r.framework, r.seed_label, row.state,
            percent(result.final_accuracy if result else None),
            percent(result.best_accuracy if result else None), r.run_id or (r.missing or "")])
    return "\n".join(aligned(header, body))


def print_plan(rows: list[Row], protocols: list[Protocol], out=None) -> None:
    out = out or sys.stdout  # looked up now: tests and callers may replace sys.stdout
    for protocol in protocols:
        mine = [r for r in rows if r.run.protocol == protocol.name]
        arms = len({r.run.arm for r in mine})
        frameworks = len({r.run.framework for r in mine})
        seeds = len({r.run.seed_label for r in mine})
        print(f"{protocol.name} ({protocol.path}): {len(mine)} runs = {arms} arms x "
              f"{frameworks} frameworks x {seeds} seeds", file=out)
    print(table(rows, with_protocol=len(protocols) > 1), file=out)
    counts = count_states(r.state for r in rows)
    print(" · ".join(f"{state} {n}" for state, n in sorted(counts.items())), file=out)
    print_compute_left(rows, out)
    print_inputs(rows, out)
    print_problems(rows, out)


def print_compute_left(rows: list[Row], out) -> None:
    """The runs still to do and the compute they need, from the throughput of finished runs."""
    seconds, unknown = estimate_seconds(rows)
    todo = len(to_run(rows))
    if not todo:
        return
    line = f"to run: {todo}"
    if todo > unknown:
        line += (f"; estimated compute {duration(seconds, minutes=True)} for {todo - unknown} "
                 "of them (from the images/s that finished runs measured on their machines)")
    if unknown:
        line += (f"; no estimate for {unknown} (no finished run of that framework and "
                 "model yet: `audit plan --calibrate` times them on this machine)")
    print(line, file=out)


def print_problems(rows: list[Row], out) -> None:
    """Each corrupt run with its file and what is wrong, and each note about a done run."""
    for row in rows:
        if row.state == "corrupt":
            print(f"corrupt: {row.run.label}: {row.problem} (`audit run` moves it aside and "
                  "runs it again)", file=out)
        for note in row.notes:
            print(f"note: {note} (`audit run` rewrites status.json)", file=out)


def matrix_json(rows: list[Row]) -> list[dict]:
    """`audit status PROTOCOL --json`: each row of the matrix with its result (its keys sorted,
    as the store's summary cache has always given them)."""
    return [{"protocol": r.run.protocol, "arm": r.run.arm, "framework": r.run.framework,
             "seed": r.run.seed, "run_id": r.run.run_id, "state": r.state,
             "missing": r.run.missing,
             "result": dict(sorted(r.result.to_dict().items())) if r.result else None,
             "problem": r.problem, "notes": r.notes} for r in rows]


# ------------------------------------------------------------------------------- the store

def print_store_status(rows: list[dict], out=None) -> None:
    """`audit status` without a protocol: every run in the store (`records.store_rows`)."""
    out = out or sys.stdout
    header = ["run id", "protocol", "arm", "framework", "seed", "state", "step", "final",
              "best"]
    body = [[r["run_id"], r["protocol"] or "?", r["arm"] or "?", r["framework"] or "?",
             r["seed"], r["state"], f"{r['step'] or 0}/{r['steps'] or '?'}",
             percent(r["final_accuracy"]), percent(r["best_accuracy"])] for r in rows]
    for line in aligned(header, body):
        print(line, file=out)
    print(f"{len(rows)} runs: " + (tally(count_states(r["state"] for r in rows)) or "none"),
          file=out)
    for r in rows:
        if r["state"] == "corrupt":
            print(f"corrupt: {r['problem']} (`audit run` moves it aside and runs it again)",
                  file=out)
        for note in r["notes"]:
            print(f"note: {note} (`audit run` rewrites status.json)", file=out)


# ------------------------------------------------------------------------ the priced matrix

def hours_text(seconds: float) -> str:
    """Device-hours, readable at any size: 12,345 / 12.3 / 0.0123."""
    hours = seconds / 3600
    if hours >= 100:
        return f"{hours:,.0f}"
    return f"{hours:.1f}" if hours >= 1 else f"{hours:.3g}"


def print_costs(lines: list[tuple[Row, float | None, str]], protocols: list[Protocol],
                out) -> None:
    """Each run's device-hours and how its figure was found (`calibrate.price`), then per
    protocol the device-hours per arm and in total."""
    body = [[row.run.arm, row.run.framework, row.run.seed_label, row.state,
             "-" if seconds is None else hours_text(seconds), how]
            for row, seconds, how in lines]
    for line in aligned(["arm", "framework", "seed", "state", "device-hours", "figure"], body):
        print(line, file=out)
    for protocol in protocols:
        print_protocol_costs(protocol, [line for line in lines
                                        if line[0].run.protocol == protocol.name], out)


def print_protocol_costs(protocol: Protocol, lines: list[tuple[Row, float | None, str]],
                         out) -> None:
    arms: dict[str, list] = {}
    for row, seconds, how in lines:
        arms.setdefault(row.run.arm, []).append((row, seconds, how))
    total, todo, kinds = 0.0, 0.0, set()
    print(f"{protocol.name}: device-hours per arm", file=out)
    for arm, items in arms.items():
        known = [s for _, s, _ in items if s is not None]
        kinds |= {h.split(" ")[0] for _, s, h in items if s is not None}
        hours = sum(known) / 3600
        total += sum(known)
        todo += sum(s for r, s, _ in items if s is not None and r.state != "done")
        missing = len(items) - len(known)
        print(f"  {arm}: {hours_text(hours * 3600)} ({len(known)} runs"
              + (f"; {missing} without a figure" if missing else "") + ")", file=out)
    print(f"{protocol.name}: total {hours_text(total)} device-hours, "
          f"{hours_text(todo)} of them for runs not done yet ("
          + " and ".join(sorted(kinds)) + " figures; compute only: training updates and "
          "evaluations, without data loading, start-up, checkpoints or communication "
          "between devices)", file=out)

