"""liveguard governance: PIA and data-flow manifests, their checks, run-time minimization.

Imports ``signals`` only (enforced by import-linter); the engine calls into this package.
"""

from governance.checks import RetentionLimits, check_policy, check_policy_dir
from governance.dataflow import (
    RAW_MEDIA,
    Category,
    DataElement,
    DataFlowManifest,
    Escalation,
    Location,
    Pattern,
)
from governance.errors import format_validation_error
from governance.fields import (
    ALWAYS_READABLE_ROOTS,
    KNOWN_FIELD_ROOTS,
    KNOWN_FIELDS,
    field_path_error,
    validate_field_path,
)
from governance.loading import load_governance
from governance.minimize import Projection, is_declared, minimize, retain
from governance.pia import PrivacyImpactAssessment
from governance.problems import GovernanceProblem
from governance.report import summarize

__all__ = [
    "ALWAYS_READABLE_ROOTS",
    "KNOWN_FIELDS",
    "KNOWN_FIELD_ROOTS",
    "RAW_MEDIA",
    "Category",
    "DataElement",
    "DataFlowManifest",
    "Escalation",
    "GovernanceProblem",
    "Location",
    "Pattern",
    "PrivacyImpactAssessment",
    "Projection",
    "RetentionLimits",
    "check_policy",
    "check_policy_dir",
    "field_path_error",
    "format_validation_error",
    "is_declared",
    "load_governance",
    "minimize",
    "retain",
    "summarize",
    "validate_field_path",
]
