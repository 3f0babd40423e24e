"""``python -m migrations_plan.dashboard`` is ``strangler-dashboard``."""

from migrations_plan.dashboard.cli import main

raise SystemExit(main())
