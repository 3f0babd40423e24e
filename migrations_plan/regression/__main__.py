"""``python -m migrations_plan.regression`` is ``strangler-replay``."""

from migrations_plan.regression.cli import main

raise SystemExit(main())
