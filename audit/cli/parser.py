"""The `audit` command's arguments: one function per subcommand adds its own."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audit", description="Reproducibility audit of TransFG (AAAI 2022).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_doctor, add_data, add_validate, add_plan, add_run, add_status, add_report,
                add_explain, add_demo):
        add(commands)
    return parser


def add_doctor(commands) -> None:
    doctor = commands.add_parser("doctor", help="what this machine has; non-zero exit when "
                                                "something the audit needs is missing")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")


def add_data(commands) -> None:
    from transfg.data.readers import DATASETS

    data = commands.add_parser("data", help="dataset tools").add_subparsers(
        dest="data_command", required=True, metavar="DATA_COMMAND")
    check = data.add_parser("check", help="verify a dataset folder: files, counts, labels, "
                                          "images; exit 1 when anything is wrong")
    check.add_argument("name", choices=sorted(DATASETS), metavar="NAME",
                       help=f"one of: {', '.join(sorted(DATASETS))}")
    check.add_argument("root", help="the dataset folder, as downloaded")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--skip-decode", action="store_true",
                       help="check that image files exist, without decoding them")
    check.add_argument("--content-hash", action="store_true",
                       help="fingerprint every file's bytes (slow) instead of names and sizes")


def add_validate(commands) -> None:
    validate = commands.add_parser("validate", help="check protocol files; every error at once "
                                                    "(exit 2 when any is wrong, nothing written)")
    validate.add_argument("protocols", nargs="+", metavar="PROTOCOL")


def add_plan(commands) -> None:
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


def add_run(commands) -> None:
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
    add_slurm_options(run)
    add_until_decided_options(run)


def add_slurm_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--partition", help="slurm: partition")
    run.add_argument("--time", type=int, default=24 * 60, metavar="MINUTES",
                     help="slurm: time limit per job in minutes (default 1440)")
    run.add_argument("--account", help="slurm: account")
    run.add_argument("--cpus", type=int, help="slurm: CPUs per job")
    run.add_argument("--gpus", type=int, help="slurm: GPUs per job (default: the protocol's "
                                              "devices per run)")
    run.add_argument("--no-wait", action="store_true", help="slurm: submit and return")


def add_until_decided_options(run: argparse.ArgumentParser) -> None:
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


def add_status(commands) -> None:
    status = commands.add_parser("status", help="a table of the runs in the store (of the "
                                                "given protocols, or all) and their metrics")
    status.add_argument("protocols", nargs="*", metavar="PROTOCOL")
    status.add_argument("--store", default="runs", help="the run store (default: runs/)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    add_input_options(status)


def add_report(commands) -> None:
    report = commands.add_parser("report", help="verdicts per claim, with intervals, as HTML, "
                                                "PDF, JSON, CSV (works with zero runs)")
    report.add_argument("protocols", nargs="+", metavar="PROTOCOL")
    report.add_argument("--store", default="runs", help="the run store (default: runs/)")
    report.add_argument("--format", default="html,pdf,json", type=names,
                        help="comma-separated: html, pdf, json, csv, model-index "
                             "(default html,pdf,json)")
    report.add_argument("-o", "--output", default="reports", help="folder (default reports/)")
    report.add_argument("--name", help="file name stem (default: the protocol's name)")
    report.add_argument("--seed", type=int, default=0,
                        help="seed of the bootstrap resampling (recorded in the report)")
    add_input_options(report)


def add_explain(commands) -> None:
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


def add_demo(commands) -> None:
    demo = commands.add_parser("demo", help="a web page that explains uploaded images "
                                            "(binds to localhost by default)")
    demo.add_argument("--checkpoint", required=True, help="a run's checkpoints/last.npz")
    demo.add_argument("--host", default="127.0.0.1",
                      help="address to bind (default 127.0.0.1: this machine only)")
    demo.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    demo.add_argument("--dataset", help="the checkpoint's dataset (read from its run folder)")
    demo.add_argument("--data-root", help="the dataset folder: class names and a gallery of "
                                          "test images")


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
    parser.add_argument("--arms", type=names, help="only these arms (comma-separated)")
    parser.add_argument("--frameworks", type=names, help="only these frameworks")
    parser.add_argument("--seeds", type=seed_list, help="only these seeds (comma-separated)")


def names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def seed_list(text: str) -> list[int]:
    try:
        return [int(part) for part in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers, comma-separated")\
            from None
