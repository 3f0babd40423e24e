"""Cart bounded context."""
