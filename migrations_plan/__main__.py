"""`python -m migrations_plan ...` runs the plan CLI."""

import sys

from migrations_plan.cli import main

sys.exit(main())
