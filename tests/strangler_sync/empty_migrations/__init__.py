"""An empty migrations package: strangler_sync without its migrations (test_checks.py)."""
