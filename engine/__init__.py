"""liveguard engine: request/decision model, fusion, policies and the decision function."""

from engine.core.decide import decide
from engine.core.models import Action, Decision, DecisionRequest
from engine.core.policy import Policy
from engine.policy.repository import PolicyRepository, load_policy

__all__ = [
    "Action",
    "Decision",
    "DecisionRequest",
    "Policy",
    "PolicyRepository",
    "decide",
    "load_policy",
]
