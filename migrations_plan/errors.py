"""Errors of the control plane; str() is the one line the CLI prints.

The control plane runs without Django (it drives the projects from outside), so these do not subclass
servicekit's DomainError, which needs Django settings to import; the categories are the same.
"""

from __future__ import annotations


class PlanError(Exception):
    """Anything that stops a plan command; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class PlanFileError(PlanError):
    """A plan file problem: ``file:line: field: message``."""

    exit_code = 2

    def __init__(self, path: str, line: int, field: str, message: str):
        self.path, self.line, self.field, self.message = path, line, field, message
        super().__init__(f"{path}:{line}: {field}: {message}")


class PlanNotFound(PlanError):
    exit_code = 2


class PlanConflict(PlanError):
    """The plan cannot move now: frozen, finished, nothing to roll back, not reversible, locked."""


class GatesBlocked(PlanError):
    """The next step's gates do not all pass (failed, waiting or unknown)."""


class ActionFailed(PlanError):
    """An action failed while a step was applied or undone (the step's earlier actions were undone)."""
