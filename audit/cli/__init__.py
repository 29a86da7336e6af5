"""The `audit` command: `parser.py` (its arguments, one function per subcommand), `commands.py`
(what each subcommand does), `tables.py` (what they print as tables). `python -m audit.cli` and
the `audit` entry point (pyproject.toml) run `main`."""

from __future__ import annotations

import sys

from audit.cli.commands import dispatch
from audit.cli.parser import build_parser


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
