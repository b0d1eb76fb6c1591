"""liveguard engine: request/decision model, fusion, policies and the decision function."""

from engine.decide import decide
from engine.models import Action, Decision, DecisionRequest
from engine.policy import Policy, PolicyRepository, load_policy

__all__ = [
    "Action",
    "Decision",
    "DecisionRequest",
    "Policy",
    "PolicyRepository",
    "decide",
    "load_policy",
]
