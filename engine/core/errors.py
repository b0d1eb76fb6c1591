"""One error taxonomy with stable codes.

The core raises these; the API maps them to HTTP statuses and the CLI to exit codes.
"""

from __future__ import annotations


class LiveguardError(Exception):
    """Base class: every error we raise on purpose has a stable ``code``."""

    code = "liveguard_error"
    #: CLI exit code: 2 = bad input, 1 = a decision/test failure.
    exit_code = 2
    http_status = 400

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def lines(self) -> list[str]:
        """The message and every problem, one line each, for terminals and logs."""
        return [self.message, *(f"  {p}" for p in self.problems)]


class RequestInvalid(LiveguardError):
    code = "request_invalid"
    http_status = 422


class SignalInvalid(RequestInvalid):
    code = "signal_invalid"


class PolicyNotFound(LiveguardError):
    code = "policy_not_found"
    http_status = 404


class PolicyNotApplicable(LiveguardError):
    """A request named a policy whose applies_to does not cover its session."""

    code = "policy_not_applicable"
    http_status = 422


class PolicyAmbiguous(LiveguardError):
    code = "policy_ambiguous"
    http_status = 409


class PolicyInvalid(LiveguardError):
    """A policy folder that does not load: every problem is listed, not just the first."""

    code = "policy_invalid"
    http_status = 500


class PolicyEvalError(LiveguardError):
    """Evaluation failed at request time; the caller gets the policy's fail_mode action."""

    code = "policy_eval_error"
    http_status = 500


class PolicyEvalTimeout(PolicyEvalError):
    """Evaluation took longer than the policy's ``eval_budget_ms``; fail_mode applies."""

    code = "policy_eval_timeout"


class BundleInvalid(LiveguardError):
    code = "bundle_invalid"
