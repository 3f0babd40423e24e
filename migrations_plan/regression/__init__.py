"""Side-by-side regression testing: a pytest plugin and the `strangler-replay` CLI, both on strangler_proxy's diff."""
