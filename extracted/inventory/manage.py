#!/usr/bin/env python3
"""The inventory service's manage.py (run from anywhere: `python extracted/inventory/manage.py migrate`)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Python put this file's folder first on sys.path, where celery.py would shadow the celery package:
    # replace it with the repository root, so `extracted.inventory` and the shared packages import.
    sys.path[0] = str(Path(__file__).resolve().parents[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extracted.inventory.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
