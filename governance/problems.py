"""One governance problem: a stable code for machines, one line for people."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GovernanceProblem"]


@dataclass(frozen=True, slots=True)
class GovernanceProblem:
    policy_id: str
    file: str
    code: str  # stable: CI, dashboards and the API key on it; never reword a code
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {
            "policy_id": self.policy_id,
            "file": self.file,
            "code": self.code,
            "message": self.message,
        }
