"""What a loaded policy is to the decision core: its manifest, fusion, data-flow manifest
and evaluator, and what it may see of a request (``PolicyView``).

Pure: building a ``Policy`` from a folder is ``engine.policy.loader``'s job; evaluating
is a backend's (``engine.backends``), behind the ``Evaluator`` protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.core.conditions import REQUEST_FIELDS
from engine.core.fusion import FusionConfig
from engine.core.manifest import DEFAULT_EVAL_BUDGET_MS, PolicyManifest
from engine.core.models import Action, DecisionRequest, Fused, Obligation, PolicyRef, Reason
from governance.dataflow import DataFlowManifest
from governance.minimize import is_declared
from signals import Signal

#: How many distinct signal names a policy remembers the verdict for.
_SIGNAL_CACHE_MAX = 1024

if TYPE_CHECKING:  # the YAML backend's spec type; the core never imports a backend
    from engine.backends.yaml_policy import YamlPolicySpec


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a policy backend returns before the engine turns it into a Decision."""

    action: Action
    thresholds: dict[Action, float]
    reasons: tuple[Reason, ...]
    context_phrases: tuple[str, ...] = ()
    #: Backends that decide obligations themselves (Rego) set this; YAML leaves it None and
    #: the engine derives obligations from the policy's ``obligations`` section.
    obligations: tuple[Obligation, ...] | None = None


class Evaluator(Protocol):
    """A policy backend: YAML closures or a compiled Rego query."""

    def evaluate(self, view: PolicyView, fused: Fused, degraded: bool) -> Outcome: ...

    def fields_read(self) -> set[str]: ...


@dataclass(frozen=True, slots=True)
class PolicyView:
    """What one policy may see of one request, after minimization and consent."""

    request: DecisionRequest
    ctx: dict[str, Any]
    signals: tuple[Signal, ...]
    media_dropped: tuple[str, ...]
    undeclared_dropped: tuple[str, ...]


@dataclass(eq=False)
class Policy:
    """A loaded, compiled policy version; immutable after load and safe to share."""

    manifest: PolicyManifest
    digest: str
    path: Path
    fusion: FusionConfig
    dataflow: DataFlowManifest
    evaluator: Evaluator
    spec: YamlPolicySpec | None = None
    git_ref: str | None = None
    ref: PolicyRef = field(init=False)
    _ctx_keys: tuple[str, ...] = field(init=False)
    _getters: tuple[tuple[str, str, attrgetter], ...] = field(init=False)
    _signal_allowed: dict[str, bool] = field(init=False, default_factory=dict)
    _signal_fields: tuple[str, ...] = field(init=False)
    #: Signal name → plain words for summaries: the YAML spec's, or what another backend's
    #: evaluator declares (a Rego policy's fusion.yaml).
    signal_phrases: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.signal_phrases = (
            self.spec.signal_phrases
            if self.spec is not None
            else dict(getattr(self.evaluator, "signal_phrases", None) or {})
        )
        self.ref = PolicyRef(
            id=self.manifest.id,
            version=self.manifest.version,
            digest=self.digest,
            engine=self.manifest.engine,
        )
        allowed = self.dataflow.allowed_fields()
        # YAML policies only need the fields their conditions name; other backends (Rego)
        # get every declared field.
        referenced = self.spec.condition_fields() if self.spec else None
        # Minimization by construction: the context only ever holds declared fields.
        self._ctx_keys = tuple(
            k
            for k in REQUEST_FIELDS
            if is_declared(k, allowed) and (referenced is None or k in referenced)
        )
        self._getters = tuple(
            (key, section, attrgetter(rest))
            for key in self._ctx_keys
            for section, rest in [key.split(".", 1)]
        )
        self._allowed = allowed
        self._signal_fields = tuple(
            sorted(p for p in (referenced or ()) if p.startswith("signals."))
        )

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def eval_budget_ms(self) -> float:
        """The manifest's ``eval_budget_ms``, or the default."""
        return self.manifest.eval_budget_ms or DEFAULT_EVAL_BUDGET_MS

    def signal_allowed(self, name: str) -> bool:
        ok = self._signal_allowed.get(name)
        if ok is None:
            ok = is_declared(f"signals.{name}", self._allowed)
            # Names come from callers: remember a bounded number, never every one sent.
            if len(self._signal_allowed) < _SIGNAL_CACHE_MAX:
                self._signal_allowed[name] = ok
        return ok

    def view(self, request: DecisionRequest) -> PolicyView:
        ctx: dict[str, Any] = {}
        for key, section, get in self._getters:
            part = getattr(request, section)
            if part is not None:  # transaction and device are optional
                ctx[key] = get(part)
        consented = request.session.consent.media_analysis
        kept: list[Signal] = []
        media_dropped: list[str] = []
        undeclared: list[str] = []
        for s in request.signals:
            if not consented and s.media_derived:
                media_dropped.append(s.name)
            elif not self.signal_allowed(s.name):
                undeclared.append(s.name)
            else:
                kept.append(s)
        for path in self._signal_fields:
            _, modality, what, attr = path.split(".")
            name = f"{modality}.{what}"
            matching = [s for s in kept if s.name == name]
            if attr == "present":
                ctx[path] = bool(matching)
            elif matching:
                ctx[path] = max(getattr(s, attr) for s in matching)
        return PolicyView(request, ctx, tuple(kept), tuple(media_dropped), tuple(undeclared))

    def fields_read(self) -> set[str]:
        return self.evaluator.fields_read()


def seen_by(policy: Policy, request: DecisionRequest) -> DecisionRequest:
    """``request`` with only the signals ``policy`` may see: media-derived signals need the
    session's consent to media analysis, and every signal must be declared in the policy's
    data-flow manifest. The same rule as ``Policy.view``; the request itself when nothing
    is set aside (the common case: no copy)."""
    consented = request.session.consent.media_analysis
    kept = tuple(
        s
        for s in request.signals
        if (consented or not s.media_derived) and policy.signal_allowed(s.name)
    )
    if len(kept) == len(request.signals):
        return request
    return request.model_copy(update={"signals": kept})
