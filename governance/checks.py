"""``governance check``: every problem of one policy's privacy paperwork, all at once.

Each rule is a small function returning problems; ``check_policy`` runs them all so CI
shows the complete list on the first run instead of one problem per push.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from governance.dataflow import RAW_MEDIA, Category, DataFlowManifest, Location, Pattern
from governance.loading import DATAFLOW_FILE, PIA_FILE, load_governance
from governance.minimize import is_declared
from governance.pia import Level, PrivacyImpactAssessment
from governance.problems import GovernanceProblem
from governance.report import summarize

__all__ = [
    "GovernanceProblem",
    "RetentionLimits",
    "check_policy",
    "check_policy_dir",
    "load_governance",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class RetentionLimits:
    """Maximum retention per category, in days.

    Raw media and features are the voice and face themselves (or close to them), so they
    are kept for weeks at most; scores, metadata and identity outcomes back fraud
    investigations and disputes, which run for about a year.
    """

    raw_audio: int = 30
    raw_video: int = 30
    features: int = 30
    scores: int = 400
    metadata: int = 400
    identity: int = 400

    def max_days(self, category: Category) -> int:
        return int(getattr(self, category.value))


@dataclass(frozen=True, slots=True)
class _Ctx:
    policy_id: str
    pia_file: str
    dataflow_file: str

    def pia(self, code: str, message: str) -> GovernanceProblem:
        return GovernanceProblem(self.policy_id, self.pia_file, code, message)

    def flow(self, code: str, message: str) -> GovernanceProblem:
        return GovernanceProblem(self.policy_id, self.dataflow_file, code, message)


# --- data-flow rules ---------------------------------------------------------------------


def _undeclared_fields(
    ctx: _Ctx, df: DataFlowManifest, fields_read: Iterable[str]
) -> list[GovernanceProblem]:
    allowed = df.allowed_fields()
    return [
        ctx.flow(
            "field_undeclared",
            f"policy reads {f!r}, which no data element declares (add it to an element's fields)",
        )
        for f in sorted(set(fields_read))
        if not is_declared(f, allowed)
    ]


def _escalation(ctx: _Ctx, df: DataFlowManifest) -> list[GovernanceProblem]:
    out: list[GovernanceProblem] = []
    for el in df.elements:
        esc = el.escalation
        if esc is None or not esc.allowed:
            continue
        if not esc.requires_consent:
            out.append(
                ctx.flow(
                    "escalation_without_consent",
                    f"element {el.name!r}: raw media may be escalated without the participant's "
                    "consent (set escalation.requires_consent: true)",
                )
            )
        if not esc.reviewer_access:
            out.append(
                ctx.flow(
                    "escalation_without_reviewer",
                    f"element {el.name!r}: raw media may be escalated but no reviewer access is "
                    "declared (set escalation.reviewer_access)",
                )
            )
        if esc.retention_days is None:
            # Not a leak (the live runtime keeps no raw media for an unstated time) but a
            # manifest that promises escalation the runtime will silently never perform.
            out.append(
                ctx.flow(
                    "escalation_without_retention",
                    f"element {el.name!r}: raw media may be escalated but no retention is "
                    "declared, so no excerpt is ever kept (set escalation.retention_days, "
                    "1-365)",
                )
            )
    return out


def _retention(ctx: _Ctx, df: DataFlowManifest, limits: RetentionLimits) -> list[GovernanceProblem]:
    out: list[GovernanceProblem] = []
    for el in df.elements:
        if el.retention_days is None:
            out.append(
                ctx.flow(
                    "retention_missing",
                    f"element {el.name!r}: retention_days is missing (0 = not kept)",
                )
            )
            continue
        limit = limits.max_days(el.category)
        if el.retention_days > limit:
            out.append(
                ctx.flow(
                    "retention_excessive",
                    f"element {el.name!r}: retention_days {el.retention_days} exceeds the "
                    f"{limit}-day maximum for {el.category.value}",
                )
            )
    return out


def _pattern(ctx: _Ctx, df: DataFlowManifest) -> list[GovernanceProblem]:
    """Flows that contradict the declared deployment pattern."""
    if df.pattern is Pattern.cloud_only:
        return []  # media analysed server-side: any placement is consistent
    # Which categories must stay on the edge, and whether raw media may ever leave it.
    edge_bound: frozenset[Category] = RAW_MEDIA
    if df.pattern is Pattern.edge_only:
        edge_bound = RAW_MEDIA | {Category.features}
    escalation_ok = df.pattern is Pattern.hybrid
    why = {
        Pattern.edge_only: "edge_only keeps media and features on the endpoint",
        Pattern.feature_only_cloud: "feature_only_cloud sends features, never raw media",
        Pattern.hybrid: "hybrid sends raw media to the cloud only by escalation",
    }[df.pattern]
    out: list[GovernanceProblem] = []
    for el in df.elements:
        if el.category in edge_bound and el.processed_at is not Location.edge:
            out.append(
                ctx.flow(
                    "pattern_violation",
                    f"element {el.name!r}: {el.category.value} processed in the cloud, "
                    f"but pattern is {df.pattern.value} ({why})",
                )
            )
        if el.escalation_allowed and not escalation_ok:
            out.append(
                ctx.flow(
                    "pattern_violation",
                    f"element {el.name!r}: raw media escalation allowed, "
                    f"but pattern is {df.pattern.value} ({why})",
                )
            )
    return out


def _grants_reviewers(df: DataFlowManifest) -> bool:
    for el in df.elements:
        if el.escalation is not None and el.escalation.allowed and el.escalation.reviewer_access:
            return True
        # Recipients are free-form role names ("reviewers", "fraud-review", ...).
        if any("review" in r for r in el.recipients):
            return True
    return False


# Media signals are computed from the participant's voice or face; the manifest must declare
# that source (raw media, or features under feature_only_cloud), not just the score.
_MEDIA_SOURCES: dict[str, frozenset[Category]] = {
    "audio": frozenset({Category.raw_audio, Category.features}),
    "video": frozenset({Category.raw_video, Category.features}),
    "av": frozenset({Category.raw_video, Category.features}),
}


def _media_sources(ctx: _Ctx, df: DataFlowManifest) -> list[GovernanceProblem]:
    present = {el.category for el in df.elements}
    modalities = sorted(
        {
            parts[1]
            for f in df.allowed_fields()
            if (parts := f.split("."))[0] == "signals" and len(parts) > 1
        }
    )
    return [
        ctx.flow(
            "media_source_undeclared",
            f"{modality} signals are declared but no element declares the media they are "
            f"computed from (one of: {', '.join(sorted(c.value for c in _MEDIA_SOURCES[modality]))})",
        )
        for modality in modalities
        if modality in _MEDIA_SOURCES and not (present & _MEDIA_SOURCES[modality])
    ]


def _human_review(ctx: _Ctx, df: DataFlowManifest) -> list[GovernanceProblem]:
    if df.human_review and not _grants_reviewers(df):
        return [
            ctx.flow(
                "review_without_access",
                "human_review is true but no data element names reviewers as a recipient, so "
                "reviewers would work blind (add 'reviewers' to the recipients they need)",
            )
        ]
    return []


# --- PIA rules and PIA ↔ data-flow consistency -------------------------------------------


def _pia_dates_versions(
    ctx: _Ctx, pia: PrivacyImpactAssessment, policy_version: str | None, today: date
) -> list[GovernanceProblem]:
    out: list[GovernanceProblem] = []
    if pia.review_date < today:
        out.append(
            ctx.pia(
                "pia_overdue",
                f"PIA review date {pia.review_date.isoformat()} has passed "
                f"(today {today.isoformat()}); the DPO must review it",
            )
        )
    if policy_version is not None and pia.policy_version != policy_version:
        out.append(
            ctx.pia(
                "pia_version_mismatch",
                f"PIA was written for policy version {pia.policy_version}, "
                f"but the policy is version {policy_version}",
            )
        )
    if pia.residual_risk is Level.high and not pia.prior_consultation:
        out.append(
            ctx.pia(
                "prior_consultation_missing",
                "residual_risk is high: record the supervisory authority's prior consultation "
                "(GDPR Art. 36) in prior_consultation",
            )
        )
    return out


def _art9(ctx: _Ctx, pia: PrivacyImpactAssessment, df: DataFlowManifest) -> list[GovernanceProblem]:
    biometric = [el.name for el in df.elements if el.biometric_identification]
    if biometric and not pia.art9_condition:
        return [
            ctx.pia(
                "art9_missing",
                f"{'element' if len(biometric) == 1 else 'elements'} "
                f"{', '.join(map(repr, biometric))} identify people from voice or face "
                "(biometric data, GDPR Art. 9) but art9_condition is not set",
            )
        ]
    return []


def _reviewer_roles(
    ctx: _Ctx, pia: PrivacyImpactAssessment, df: DataFlowManifest
) -> list[GovernanceProblem]:
    declared = pia.access_roles()
    out: list[GovernanceProblem] = []
    for el in df.elements:
        if el.escalation is None or not el.escalation.allowed:
            continue
        for role in el.escalation.reviewer_access:
            if role not in declared:
                out.append(
                    ctx.pia(
                        "reviewer_access_undeclared",
                        f"escalated raw media of {el.name!r} is accessible to {role!r}, "
                        "which the PIA's access list does not name",
                    )
                )
    return out


def _retention_consistent(
    ctx: _Ctx, pia: PrivacyImpactAssessment, df: DataFlowManifest
) -> list[GovernanceProblem]:
    out: list[GovernanceProblem] = []
    for el in df.elements:
        days = el.retention_days
        if days is None:
            continue
        if el.is_raw_media and days > pia.retention.raw_media_days:
            out.append(
                ctx.flow(
                    "retention_inconsistent",
                    f"element {el.name!r}: keeps raw media {days} days, but the PIA assesses "
                    f"raw_media_days {pia.retention.raw_media_days}",
                )
            )
        elif "decision_log" in el.recipients and days > pia.retention.decision_log_days:
            out.append(
                ctx.flow(
                    "retention_inconsistent",
                    f"element {el.name!r}: keeps {days} days in the decision log, but the PIA "
                    f"assesses decision_log_days {pia.retention.decision_log_days}",
                )
            )
    return out


# --- entry points ------------------------------------------------------------------------


def check_policy(
    *,
    policy_id: str,
    policy_version: str | None,
    fields_read: Iterable[str],
    pia: PrivacyImpactAssessment | None,
    dataflow: DataFlowManifest | None,
    today: date,
    limits: RetentionLimits = RetentionLimits(),
    policy_dir: Path | str | None = None,
) -> list[GovernanceProblem]:
    """Every governance problem of one policy.

    ``fields_read``: every request field the policy reads (signals as ``signals.<name>``).
    ``policy_dir`` only shapes file names in messages (default ``<policy_id>/…``).
    A missing document is itself a problem: a policy without paperwork never passes.
    """
    base = Path(policy_dir) if policy_dir is not None else Path(policy_id)
    ctx = _Ctx(policy_id, str(base / PIA_FILE), str(base / DATAFLOW_FILE))
    problems: list[GovernanceProblem] = []

    if dataflow is None:
        problems.append(ctx.flow("manifest_missing", f"{DATAFLOW_FILE} is missing or invalid"))
    else:
        if dataflow.policy != policy_id:
            problems.append(
                ctx.flow(
                    "policy_mismatch", f"written for policy {dataflow.policy!r}, not {policy_id!r}"
                )
            )
        problems += _undeclared_fields(ctx, dataflow, fields_read)
        problems += _escalation(ctx, dataflow)
        problems += _retention(ctx, dataflow, limits)
        problems += _pattern(ctx, dataflow)
        problems += _media_sources(ctx, dataflow)
        problems += _human_review(ctx, dataflow)

    if pia is None:
        problems.append(ctx.pia("manifest_missing", f"{PIA_FILE} is missing or invalid"))
    else:
        if pia.policy != policy_id:
            problems.append(
                ctx.pia("policy_mismatch", f"written for policy {pia.policy!r}, not {policy_id!r}")
            )
        problems += _pia_dates_versions(ctx, pia, policy_version, today)

    if pia is not None and dataflow is not None:
        cross: list[Callable[[_Ctx, PrivacyImpactAssessment, DataFlowManifest], list]] = [
            _art9,
            _reviewer_roles,
            _retention_consistent,
        ]
        for rule in cross:
            problems += rule(ctx, pia, dataflow)
    return problems


def check_policy_dir(
    policy_dir: Path | str,
    *,
    policy_version: str | None,
    fields_read: Iterable[str],
    today: date,
    limits: RetentionLimits = RetentionLimits(),
) -> list[GovernanceProblem]:
    """Load and check one policy folder; loading problems replace 'missing' duplicates."""
    policy_dir = Path(policy_dir)
    pia, dataflow, load_problems = load_governance(policy_dir)
    checked = check_policy(
        policy_id=policy_dir.name,
        policy_version=policy_version,
        fields_read=fields_read,
        pia=pia,
        dataflow=dataflow,
        today=today,
        limits=limits,
        policy_dir=policy_dir,
    )
    # load_governance already said why a document is absent; don't say it twice.
    return load_problems + [p for p in checked if p.code != "manifest_missing"]
