"""Accounts bounded context."""
