"""The `audit` command."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audit", description="Reproducibility audit of TransFG (AAAI 2022).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor = commands.add_parser("doctor", help="what this machine has; non-zero exit when "
                                                "something the audit needs is missing")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    data = commands.add_parser("data", help="dataset tools").add_subparsers(
        dest="data_command", required=True, metavar="DATA_COMMAND")
    check = data.add_parser("check", help="verify a dataset folder: files, counts, labels, "
                                          "images; exit 1 when anything is wrong")
    from transfg.data.readers import DATASETS

    check.add_argument("name", choices=sorted(DATASETS), metavar="NAME",
                       help=f"one of: {', '.join(sorted(DATASETS))}")
    check.add_argument("root", help="the dataset folder, as downloaded")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--skip-decode", action="store_true",
                       help="check that image files exist, without decoding them")
    check.add_argument("--content-hash", action="store_true",
                       help="fingerprint every file's bytes (slow) instead of names and sizes")

    validate = commands.add_parser("validate", help="check protocol files; every error at once "
                                                    "(exit 2 when any is wrong, nothing written)")
    validate.add_argument("protocols", nargs="+", metavar="PROTOCOL")

    plan = commands.add_parser("plan", help="the run matrix of protocols: which runs are done, "
                                            "running, failed or missing, and the compute left")
    add_matrix_options(plan)
    plan.add_argument("--calibrate", action="store_true",
                      help="time a few training steps and one evaluation batch per distinct "
                           "model, framework, precision and image size (each in its own "
                           "process, cached in the store) and show device-hours per run, arm "
                           "and in total")
    plan.add_argument("--image-size", type=int, metavar="PX",
                      help="--calibrate at this image size instead of the protocol's (figures "
                           "for the protocol's size are then extrapolated by FLOPs)")
    plan.add_argument("--steps", type=int, default=None, metavar="N",
                      help="--calibrate: timed training steps per configuration (default 3, "
                           "after one warm-up step)")

    run = commands.add_parser("run", help="run what is missing, resume what was interrupted, "
                                          "skip what is done")
    add_matrix_options(run)
    run.add_argument("--executor", choices=["local", "slurm", "submitit-local"],
                     default="local", help="local: a pool over this machine's GPUs or CPU "
                     "slots; slurm: one Slurm job per run (submitit); submitit-local: the Slurm "
                     "code path with jobs as local processes")
    run.add_argument("--jobs", type=int, help="local: runs at once (default: one per GPU "
                                              "group, or 1 on CPU)")
    run.add_argument("--retry-failed", action="store_true",
                     help="run failed and diverged runs again (from their last checkpoint)")
    run.add_argument("--keep-corrupt", action="store_true",
                     help="leave corrupt runs as they are (by default their folders are moved "
                          "into <store>/.damaged/ and the runs run again)")
    run.add_argument("--partition", help="slurm: partition")
    run.add_argument("--time", type=int, default=24 * 60, metavar="MINUTES",
                     help="slurm: time limit per job in minutes (default 1440)")
    run.add_argument("--account", help="slurm: account")
    run.add_argument("--cpus", type=int, help="slurm: CPUs per job")
    run.add_argument("--gpus", type=int, help="slurm: GPUs per job (default: the protocol's "
                                              "devices per run)")
    run.add_argument("--no-wait", action="store_true", help="slurm: submit and return")
    run.add_argument("--until-decided", action="store_true",
                     help="seeds in stages (the protocol's [sequential] design): a first stage "
                          "for every group a claim needs, then more seeds only where a claim is "
                          "still inconclusive, until all are decided, the last stage or the "
                          "budget")
    run.add_argument("--max-seeds", type=int, metavar="N",
                     help="--until-decided: at most N seeds per group (the design's horizon "
                          "at the first stage)")
    run.add_argument("--budget", type=float, metavar="HOURS",
                     help="--until-decided: no stage that would take the device-hours spent on "
                          "the protocol's runs beyond HOURS")

    status = commands.add_parser("status", help="a table of the runs in the store (of the "
                                                "given protocols, or all) and their metrics")
    status.add_argument("protocols", nargs="*", metavar="PROTOCOL")
    status.add_argument("--store", default="runs", help="the run store (default: runs/)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    add_input_options(status)

    report = commands.add_parser("report", help="verdicts per claim, with intervals, as HTML, "
                                                "PDF, JSON, CSV (works with zero runs)")
    report.add_argument("protocols", nargs="+", metavar="PROTOCOL")
    report.add_argument("--store", default="runs", help="the run store (default: runs/)")
    report.add_argument("--format", default="html,pdf,json", type=_names,
                        help="comma-separated: html, pdf, json, csv, model-index "
                             "(default html,pdf,json)")
    report.add_argument("-o", "--output", default="reports", help="folder (default reports/)")
    report.add_argument("--name", help="file name stem (default: the protocol's name)")
    report.add_argument("--seed", type=int, default=0,
                        help="seed of the bootstrap resampling (recorded in the report)")
    add_input_options(report)

    explain = commands.add_parser("explain", help="a checkpoint's top-5 for images, with the "
                                                  "patches the Part Selection Module picks boxed")
    explain.add_argument("checkpoint", help="a run's checkpoints/last.npz (either framework)")
    explain.add_argument("images", nargs="+", metavar="IMAGE")
    explain.add_argument("-o", "--output", default="explained",
                         help="folder for the boxed images (default explained/)")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.add_argument("--heatmap", action="store_true",
                         help="also write the CLS attention rollout as a heatmap")
    explain.add_argument("--dataset", help="the dataset the checkpoint was trained on (read "
                                           "from the run folder when the checkpoint is in one)")
    explain.add_argument("--data-root", help="the dataset folder, for class names")

    demo = commands.add_parser("demo", help="a web page that explains uploaded images "
                                            "(binds to localhost by default)")
    demo.add_argument("--checkpoint", required=True, help="a run's checkpoints/last.npz")
    demo.add_argument("--host", default="127.0.0.1",
                      help="address to bind (default 127.0.0.1: this machine only)")
    demo.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    demo.add_argument("--dataset", help="the checkpoint's dataset (read from its run folder)")
    demo.add_argument("--data-root", help="the dataset folder: class names and a gallery of "
                                          "test images")
    return parser


def add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", help="the dataset folder (overrides the protocol's)")
    parser.add_argument("--weights", help="Google's pretrained ViT-B_16 .npz")
    parser.add_argument("--official", metavar="CHECKOUT",
                        help="a checkout of github.com/TACJu/TransFG (framework 'official')")
    parser.add_argument("--official-python", metavar="PYTHON",
                        help="the interpreter for the official code (default: this one)")
    parser.add_argument("--smoke", action="store_true",
                        help="the protocols' small smoke size: few steps, a data subset")


def add_matrix_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocols", nargs="+", metavar="PROTOCOL")
    parser.add_argument("--store", default="runs", help="the run store (default: runs/)")
    add_input_options(parser)
    parser.add_argument("--arms", type=_names, help="only these arms (comma-separated)")
    parser.add_argument("--frameworks", type=_names, help="only these frameworks")
    parser.add_argument("--seeds", type=_seeds, help="only these seeds (comma-separated)")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers, comma-separated")\
            from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except Exception as error:
        from transfg.data.readers import DatasetError
        from transfg.run_files import RunFileError

        if isinstance(error, RunFileError | DatasetError):  # a file to fix, not a bug: no trace
            print(f"error: {error}", file=sys.stderr)
            return 1
        raise


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


def validate(args: argparse.Namespace) -> int:
    from audit.plan import seed_grid
    from audit.protocol import ProtocolError, load_all

    try:
        protocols = load_all(args.protocols)
    except ProtocolError as error:
        print("\n".join(error.errors), file=sys.stderr)
        print(f"{len(error.errors)} error(s)", file=sys.stderr)
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

    from audit.plan import Inputs, PlanError
    from audit.protocol import ProtocolError, load_all
    from audit.report import model, render
    from audit.store import Store

    try:
        protocols = load_all(args.protocols)
    except ProtocolError as error:
        print("\n".join(error.errors), file=sys.stderr)
        return 2
    unknown = sorted(set(args.format) - set(render.FORMATS))
    if unknown:
        print(f"error: --format {', '.join(unknown)}; allowed: {', '.join(render.FORMATS)}",
              file=sys.stderr)
        return 2
    inputs = Inputs(args.data_root, args.weights, args.official, args.official_python,
                    args.smoke)
    try:
        context = model.build(protocols, Store(args.store), inputs, seed=args.seed)
    except PlanError as error:  # an input that does not fit the protocol (audit/plan.py)
        print(f"error: {error}", file=sys.stderr)
        return 2
    name = args.name or (protocols[0].name if len(protocols) == 1 else "report")
    for path in render.write(context, Path(args.output), name, args.format):
        print(path)
    for item in context["summary"]:
        print(f"  {item['verdict']:<15} {item['protocol']}: {item['id']}", file=sys.stderr)
    corrupt = [c for section in context["sections"] for c in section["corrupt"]]
    for c in corrupt:  # written into the report too; the exit status says it is incomplete
        print(f"corrupt, left out: {c['label']}: {c['problem']} (`audit run` runs it again)",
              file=sys.stderr)
    return 1 if corrupt else 0


def matrix_command(args: argparse.Namespace) -> int:
    import json

    from audit import runner
    from audit.plan import Inputs, PlanError
    from audit.protocol import ProtocolError, load_all
    from audit.store import Store
    from transfg.data.readers import DatasetError

    store = Store(args.store)
    try:
        protocols = load_all(args.protocols)
    except ProtocolError as error:
        print("\n".join(error.errors), file=sys.stderr)
        return 2
    if args.weights and protocols and not any(p.weights for p in protocols):
        print(f"error: --weights {args.weights}: no protocol given declares pretrained weights "
              "([data] weights), so every run would train from the random initialisation; "
              "declare `weights` in [data] or leave --weights out", file=sys.stderr)
        return 2
    inputs = Inputs(args.data_root, args.weights, args.official, args.official_python,
                    args.smoke)
    subset = {k: getattr(args, k, None) for k in ("arms", "frameworks", "seeds")}
    try:
        # plan and status exit 1 when a run is corrupt: they show it, the store needs repair
        if args.command == "status" and not protocols:
            stored = runner.store_rows(store)
            if args.json:
                print(json.dumps(stored, indent=2))
            else:
                runner.print_store_status(stored)
            return 1 if any(r["state"] == "corrupt" for r in stored) else 0
        if args.command == "plan" and (args.calibrate or args.image_size or args.steps):
            from audit import calibrate

            if not args.calibrate:
                print("error: --image-size and --steps go with --calibrate", file=sys.stderr)
                return 2
            return calibrate.plan_command(store, protocols, inputs, subset,
                                          image_size=args.image_size, steps=args.steps)
        if args.command in ("plan", "status"):
            from audit import stages

            designs = {p.name: stages.recorded_design(store, p) for p in protocols}
            rows = runner.matrix(store, protocols, inputs, **subset, max_seeds={
                name: d.max_seeds for name, d in designs.items() if d})
            if args.json if args.command == "status" else False:
                print(json.dumps([{"protocol": r.run.protocol, "arm": r.run.arm,
                                   "framework": r.run.framework, "seed": r.run.seed,
                                   "run_id": r.run.run_id, "state": r.state,
                                   "missing": r.run.missing, "result": r.result,
                                   "problem": r.problem, "notes": r.notes}
                                  for r in rows], indent=2))
            else:
                runner.print_plan(rows, protocols)
            return 1 if any(r.state == "corrupt" for r in rows) else 0
        slurm = {"partition": args.partition, "time_minutes": args.time,
                 "account": args.account, "cpus": args.cpus, "gpus": args.gpus}
        if args.until_decided or args.max_seeds is not None or args.budget is not None:
            return until_decided(args, store, protocols, inputs, slurm)
        return runner.run(store, protocols, inputs, **subset, executor=args.executor,
                          jobs=args.jobs, retry_failed=args.retry_failed,
                          keep_corrupt=args.keep_corrupt, slurm=slurm,
                          wait=not args.no_wait)
    except (PlanError, DatasetError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


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


if __name__ == "__main__":
    sys.exit(main())
