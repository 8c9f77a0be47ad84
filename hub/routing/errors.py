"""Domain errors of routing that the API turns into HTTP answers."""

from __future__ import annotations

from collections.abc import Sequence


class TransitionError(ValueError):
    """A state change that the lifecycle does not allow from here (HTTP 409)."""

    def __init__(self, what: str, current: str, target: str, allowed: Sequence[str], why: str = "") -> None:
        self.what, self.current, self.target, self.allowed = what, current, target, list(allowed)
        reason = why or f"{what} cannot go from {current} to {target}"
        super().__init__(f"{reason}; allowed: {', '.join(self.allowed) or 'none'}")


class NotAllowed(PermissionError):
    """The actor's role may not do this (HTTP 403)."""
