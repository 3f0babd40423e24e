"""Payment provider interface and a local fake provider with documented test cards."""
