"""`python -m strangler_proxy`: the strangler-proxy command line."""

import sys

from strangler_proxy.cli import main

sys.exit(main())
