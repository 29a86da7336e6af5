"""`python -m audit.cli`: the `audit` command."""

import sys

from audit.cli import main

sys.exit(main())
