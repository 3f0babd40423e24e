"""Orders bounded context."""
