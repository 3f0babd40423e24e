"""Migration dashboard: one auto-refreshing page with routes, traffic, diffs, errors, the data plane and the plans."""
