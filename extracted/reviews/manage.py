#!/usr/bin/env python3
"""The reviews service's manage.py (run from anywhere: `python extracted/reviews/manage.py migrate`)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Python put this file's folder first on sys.path, where celery.py would shadow the celery package:
    # replace it with the repository root, so `extracted.reviews` and the shared packages import.
    sys.path[0] = str(Path(__file__).resolve().parents[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extracted.reviews.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
