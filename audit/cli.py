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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        from audit import doctor

        return doctor.main(as_json=args.json)
    if args.command == "data" and args.data_command == "check":
        return data_check(args)
    raise AssertionError(f"unhandled command {args.command}")


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
