"""Reviews bounded context."""
