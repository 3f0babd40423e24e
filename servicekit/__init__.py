"""Shared Django plumbing for every project (monolith and extracted services): env config, request ids, logs, health."""
