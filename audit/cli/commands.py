"""What each `audit` subcommand does with its arguments (`parser.py` defines them)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # each command imports what it needs when it runs
    from audit.plan import Inputs
    from audit.protocol import Protocol
    from audit.store import Store


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        from audit import doctor

        return doctor.main(as_json=args.json)
    if args.command == "data" and args.data_command == "check":
        return data_check(args)
    if args.command == "validate":
        return validate(args)
    if args.command in ("plan", "run", "status"):
        return matrix_command(args)
    if args.command == "report":
        return report(args)
    if args.command == "explain":
        return explain_command(args)
    if args.command == "demo":
        return demo_command(args)
    raise AssertionError(f"unhandled command {args.command}")


def load_protocols(paths: list[str], count_errors: bool = False) -> list[Protocol] | None:
    """The protocols, or None after printing every error (and how many: `count_errors`)."""
    from audit.protocol import ProtocolError, load_all

    try:
        return load_all(paths)
    except ProtocolError as error:
        print("\n".join(error.errors), file=sys.stderr)
        if count_errors:
            print(f"{len(error.errors)} error(s)", file=sys.stderr)
        return None


def inputs_of(args: argparse.Namespace) -> Inputs:
    """What this machine supplies, from the input options (`parser.add_input_options`)."""
    from audit.plan import Inputs

    return Inputs(args.data_root, args.weights, args.official, args.official_python,
                  args.smoke)


def validate(args: argparse.Namespace) -> int:
    from audit.plan import seed_grid

    protocols = load_protocols(args.protocols, count_errors=True)
    if protocols is None:
        return 2
    for protocol in protocols:
        runs = len(protocol.arms) * len(protocol.frameworks) * len(seed_grid(protocol))
        print(f"{protocol.path}: ok ({len(protocol.arms)} arms, {len(protocol.frameworks)} "
              f"frameworks, {runs} runs, {len(protocol.claims)} claims, "
              f"{len(protocol.published)} published figures)")
    return 0


def load_bundle(args: argparse.Namespace):
    """The checkpoint of `audit explain` or `audit demo`, or None after printing why not."""
    from audit.explain import ExplainError, load

    try:
        return load(args.checkpoint, args.dataset, args.data_root)
    except ExplainError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def demo_command(args: argparse.Namespace) -> int:
    from audit.demo.app import serve
    from transfg.data.readers import DatasetError, read_split

    bundle = load_bundle(args)
    if bundle is None:
        return 2
    samples = None
    if bundle.data_root and bundle.dataset:
        try:
            samples = read_split(bundle.dataset, bundle.data_root, "test")
        except (DatasetError, OSError) as error:
            print(f"warning: no gallery ({str(error).splitlines()[0]})", file=sys.stderr)
    serve(bundle, samples, args.host, args.port)
    return 0


def explain_command(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from audit.explain import ExplainError, draw_boxes, draw_heatmap, explain, open_image

    bundle = load_bundle(args)
    if bundle is None:
        return 2
    out = Path(args.output)
    results, failed = [], 0
    for image_path in args.images:
        try:
            image = open_image(image_path)
        except ExplainError as error:
            print(f"error: {image_path}: {error}", file=sys.stderr)
            failed += 1
            continue
        explanation = explain(bundle, image)
        out.mkdir(parents=True, exist_ok=True)
        stem = Path(image_path).stem
        files = {"parts": str(out / f"{stem}-parts.png")}
        draw_boxes(image, explanation).save(files["parts"])
        if args.heatmap:
            files["heatmap"] = str(out / f"{stem}-heatmap.png")
            draw_heatmap(image, explanation).save(files["heatmap"])
        results.append({"image": image_path, **explanation.to_dict(), "files": files})
        if not args.json:
            print(f"{image_path}:")
            for rank, top in enumerate(explanation.top5, 1):
                print(f"  {rank}. {top['name']:<30} {100 * top['score']:6.2f}%")
            print(f"  selected patches boxed in {files['parts']}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from audit.plan import PlanError
    from audit.report import model, render
    from audit.store import Store

    protocols = load_protocols(args.protocols)
    if protocols is None:
        return 2
    unknown = sorted(set(args.format) - set(render.FORMATS))
    if unknown:
        print(f"error: --format {', '.join(unknown)}; allowed: {', '.join(render.FORMATS)}",
              file=sys.stderr)
        return 2
    try:
        report = model.build(protocols, Store(args.store), inputs_of(args), seed=args.seed)
    except PlanError as error:  # an input that does not fit the protocol (audit/plan.py)
        print(f"error: {error}", file=sys.stderr)
        return 2
    name = args.name or (protocols[0].name if len(protocols) == 1 else "report")
    for path in render.write(report, Path(args.output), name, args.format):
        print(path)
    for item in report.summary:
        print(f"  {item.verdict:<15} {item.protocol}: {item.id}", file=sys.stderr)
    corrupt = [c for section in report.sections for c in section.corrupt]
    for c in corrupt:  # written into the report too; the exit status says it is incomplete
        print(f"corrupt, left out: {c.label}: {c.problem} (`audit run` runs it again)",
              file=sys.stderr)
    return 1 if corrupt else 0


def matrix_command(args: argparse.Namespace) -> int:
    """`audit plan`, `audit run` and `audit status`: the protocols' run matrix against the store.
    Plan and status exit 1 when a run is corrupt: they show it, the store needs repair."""
    from audit.plan import PlanError
    from audit.store import Store
    from transfg.data.readers import DatasetError

    store = Store(args.store)
    protocols = load_protocols(args.protocols)
    if protocols is None or unused_weights(args, protocols):
        return 2
    inputs = inputs_of(args)
    subset = {k: getattr(args, k, None) for k in ("arms", "frameworks", "seeds")}
    try:
        if args.command == "status" and not protocols:
            return store_status(store, as_json=args.json)
        if args.command == "plan" and (args.calibrate or args.image_size or args.steps):
            if not args.calibrate:
                print("error: --image-size and --steps go with --calibrate", file=sys.stderr)
                return 2
            return calibrated_plan(store, protocols, inputs, subset,
                                   image_size=args.image_size, steps=args.steps)
        if args.command in ("plan", "status"):
            return show_matrix(store, protocols, inputs, subset,
                               as_json=args.command == "status" and args.json)
        return run_command(args, store, protocols, inputs, subset)
    except (PlanError, DatasetError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def unused_weights(args: argparse.Namespace, protocols: list[Protocol]) -> bool:
    """Whether --weights was given for protocols none of which declares pretrained weights (the
    runs would train from scratch all the same); says so."""
    if args.weights and protocols and not any(p.weights for p in protocols):
        print(f"error: --weights {args.weights}: no protocol given declares pretrained weights "
              "([data] weights), so every run would train from the random initialisation; "
              "declare `weights` in [data] or leave --weights out", file=sys.stderr)
        return True
    return False


def store_status(store: Store, as_json: bool) -> int:
    """`audit status` without a protocol: every run in the store; exit 1 when one is corrupt."""
    import json

    from audit.cli import tables
    from audit.records import store_rows

    stored = store_rows(store)
    if as_json:
        print(json.dumps(stored, indent=2))
    else:
        tables.print_store_status(stored)
    return 1 if any(r["state"] == "corrupt" for r in stored) else 0


def show_matrix(store: Store, protocols: list[Protocol], inputs: Inputs, subset: dict,
                as_json: bool) -> int:
    """`audit plan`, `audit status PROTOCOL...`: the matrix (up to the seeds a sequential design
    recorded in the store) with each run's state; exit 1 when one is corrupt."""
    import json

    from audit import stages
    from audit.cli import tables
    from audit.records import matrix

    designs = {p.name: stages.recorded_design(store, p) for p in protocols}
    rows = matrix(store, protocols, inputs, **subset, max_seeds={
        name: d.max_seeds for name, d in designs.items() if d})
    if as_json:
        print(json.dumps(tables.matrix_json(rows), indent=2))
    else:
        tables.print_plan(rows, protocols)
    return 1 if any(r.state == "corrupt" for r in rows) else 0


def calibrated_plan(store: Store, protocols: list[Protocol], inputs: Inputs, subset: dict, *,
                    image_size: int | None = None, steps: int | None = None, out=None) -> int:
    """`audit plan --calibrate`: the matrix with device-hours per run, per arm and in total."""
    from audit import calibrate
    from audit.cli import tables
    from audit.records import unavailable_reasons

    out = out or sys.stdout
    rows, priced = calibrate.price(store, protocols, inputs, subset, image_size=image_size,
                                   steps=steps, out=out)
    tables.print_costs(priced, protocols, out)
    for reason in unavailable_reasons(rows):
        print(f"unavailable (priced all the same; `audit run` needs it): {reason}", file=out)
    return 0


def run_command(args: argparse.Namespace, store: Store, protocols: list[Protocol],
                inputs: Inputs, subset: dict) -> int:
    from audit import runner

    slurm = {"partition": args.partition, "time_minutes": args.time,
             "account": args.account, "cpus": args.cpus, "gpus": args.gpus}
    if args.until_decided or args.max_seeds is not None or args.budget is not None:
        return until_decided(args, store, protocols, inputs, slurm)
    return runner.run(store, protocols, inputs, **subset, executor=args.executor,
                      jobs=args.jobs, retry_failed=args.retry_failed,
                      keep_corrupt=args.keep_corrupt, slurm=slurm, wait=not args.no_wait)


def until_decided(args, store, protocols, inputs, slurm) -> int:
    from audit import stages

    if not args.until_decided:
        print("error: --max-seeds and --budget go with --until-decided", file=sys.stderr)
        return 2
    if len(protocols) != 1:
        print("error: --until-decided takes one protocol (its claims decide its stages)",
              file=sys.stderr)
        return 2
    if any(getattr(args, k) for k in ("arms", "frameworks", "seeds")):
        print("error: --until-decided chooses the arms, frameworks and seeds itself (the groups "
              "of the claims still undecided); leave out --arms, --frameworks and --seeds",
              file=sys.stderr)
        return 2
    if args.max_seeds is not None and args.max_seeds < 2:
        print("error: --max-seeds: at least 2 (a t-test needs 2 seeds)", file=sys.stderr)
        return 2
    if args.budget is not None and not args.budget > 0:
        print("error: --budget: a number of device-hours > 0", file=sys.stderr)
        return 2
    return stages.until_decided(store, protocols[0], inputs, max_seeds=args.max_seeds,
                                budget_hours=args.budget, executor=args.executor,
                                jobs=args.jobs, retry_failed=args.retry_failed,
                                keep_corrupt=args.keep_corrupt, slurm=slurm,
                                wait=not args.no_wait)


def data_check(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from transfg.data.check import check_dataset, format_report

    report = check_dataset(args.name, args.root, decode=not args.skip_decode,
                           content_hash=args.content_hash,
                           progress_stream=None if args.json else sys.stderr)
    if args.json:
        print(json.dumps(dataclasses.asdict(report) | {"ok": report.ok}, indent=2))
    else:
        print(format_report(report))
    return 0 if report.ok else 1

