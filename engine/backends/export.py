"""Export a YAML policy as data plus a generic Rego evaluator, so it runs on OPA too.

``export_yaml_policy(policy)`` returns ``(module, data)``: ``module`` is the generic
evaluator ``engine/backends/yaml_policy.rego`` with its package set to
``liveguard.<id with - as _>``; ``data`` is the policy's data document, mounted (like a Rego
twin's ``data.json``) at ``data.liveguard_data.<package>``. Given the engine's fusion in
``input.fused`` (what the embedded and the remote backends send), its ``decision`` is the
document a hand-written Rego twin returns, with the semantics of
``CompiledYamlPolicy.evaluate`` and the engine's obligation plan.

Rego has no recursion, so conditions are flattened here into a node table: leaves (one
field, one comparison; ordinal ranges become label sets) and combinators grouped by depth.
The module evaluates ``MAX_DEPTH`` combinator levels and folds ``MAX_RULES`` rules by
unrolling; a policy beyond either limit is refused with an error naming it and the limit.

``ExportedYamlEvaluator`` runs an export in regopy through the Rego backend's own compile
and evaluation path; ``OpaExportedEvaluator`` runs it in OPA's Go evaluator (the oracle).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from engine.backends.rego.document import to_outcome
from engine.backends.rego.embedded import CompiledRego, RegoEvaluator, compile_rego, mount_data
from engine.backends.rego.input import request_input
from engine.backends.rego.plan import ANY, Projector
from engine.backends.rego.plan import Path as InputPath
from engine.backends.yaml_policy import YamlPolicySpec
from engine.core.conditions import ORDINALS, SIGNAL_FIELD, ConditionError, compile_condition
from engine.core.errors import BundleInvalid
from engine.core.fusion import FusionConfig
from engine.core.models import (
    ACTIONS,
    THRESHOLD_ACTIONS,
    Action,
    Fused,
    NotifyObligation,
    ReviewObligation,
    StepUpObligation,
)
from engine.core.policy import Outcome, Policy, PolicyView

#: Combinator levels the module evaluates (``held1`` … ``held4``).
MAX_DEPTH = 4
#: Rules the module folds (``s1`` … ``s32``).
MAX_RULES = 32
MODULE_FILE = "yaml_policy.rego"
_TEMPLATE_PACKAGE = "package liveguard.yaml_policy # exporter: package"
_TEMPLATE_DATA = "cfg := data.liveguard_data.yaml_policy # exporter: data"


class ExportError(BundleInvalid):
    """A YAML policy the generic evaluator cannot express (too deep, too many rules)."""


def template() -> str:
    """The generic evaluator module as shipped in the package."""
    return resources.files("engine.backends").joinpath(MODULE_FILE).read_text(encoding="utf-8")


def package_of(policy_id: str) -> str:
    return policy_id.replace("-", "_")


def export_yaml_policy(policy: Policy) -> tuple[str, dict[str, Any]]:
    """``(rego module text, data)`` for a loaded YAML policy; ``data`` is unmounted."""
    if policy.spec is None:
        raise ExportError(f"{policy.id}: not a YAML policy (engine: {policy.manifest.engine})")
    return export_spec(policy.id, policy.spec, policy.fusion)


def export_spec(
    policy_id: str, spec: YamlPolicySpec, fusion: FusionConfig | None = None
) -> tuple[str, dict[str, Any]]:
    """Export a policy spec under the package of ``policy_id`` (see ``export_yaml_policy``)."""
    package = package_of(policy_id)
    text = template()
    for marker in (_TEMPLATE_PACKAGE, _TEMPLATE_DATA):
        if text.count(marker) != 1:  # a broken template must not export silently
            raise RuntimeError(f"{MODULE_FILE}: expected the line {marker!r} exactly once")
    module = text.replace(_TEMPLATE_PACKAGE, f"package liveguard.{package}").replace(
        _TEMPLATE_DATA, f"cfg := data.liveguard_data.{package}"
    )
    return module, _data(policy_id, spec, fusion)


# --- data -----------------------------------------------------------------------------------


def _rank(action: Action) -> int:
    return ACTIONS.index(action)


def _data(policy_id: str, spec: YamlPolicySpec, fusion: FusionConfig | None) -> dict[str, Any]:
    if len(spec.rules) > MAX_RULES:
        raise ExportError(
            f"{policy_id}: {len(spec.rules)} rules; the generic Rego evaluator folds at most "
            f"{MAX_RULES} (split the policy or write it in Rego)"
        )
    table = _NodeTable(policy_id)
    adjustments = []
    for i, adj in enumerate(spec.adjustments):
        shift = adj.shift
        adjustments.append(
            {
                "id": adj.id,
                "when": table.root(adj.when, f"adjustments[{i}] ({adj.id})"),
                # A single number shifts every threshold; missing actions shift by 0.
                "shift": {
                    a.value: (shift.get(a, 0.0) if isinstance(shift, dict) else shift)
                    for a in THRESHOLD_ACTIONS
                },
                "phrase": adj.phrase,
                "reason": {
                    "code": f"adjustment.{adj.id}",
                    "message": f"Thresholds adjusted for {adj.phrase}.",
                    "kind": "adjustment",
                },
            }
        )
    rules = [
        {
            "id": rule.id,
            "when": table.root(rule.when, f"rules[{i}] ({rule.id})"),
            "rank": _rank(rule.action),
            "mode": rule.mode,
            "applies_when_degraded": rule.applies_when_degraded,
            "reason": {
                "code": f"rule.{rule.id}",
                "message": rule.reason,
                "kind": "rule",
                # The action the rule asks for: the summary leads with a rule only if it decided.
                "action": rule.action.value,
            },
        }
        for i, rule in enumerate(spec.rules)
    ]
    out: dict[str, Any] = {
        "thresholds": {a.value: spec.thresholds[a] for a in THRESHOLD_ACTIONS},
        "adjustments": adjustments,
        "rules": rules,
        "degraded": {
            "max_rank": _rank(spec.degraded.max_action),
            "min_rank": _rank(spec.degraded.min_action),
            "reason": spec.degraded.reason,
        },
        "obligations": _obligations(spec),
        "conditions": table.document(),
    }
    sp = spec.second_pass
    if sp is not None:
        out["second_pass"] = {
            "band": list(sp.band),
            "detectors": list(sp.detectors),
            "raw_media": sp.raw_media,
            "on_degraded": sp.on_degraded,
        }
    if fusion is not None:
        # Not read by the evaluator (input.fused carries the fusion): it documents, for a
        # team running the bundle on OPA, how to compute input.fused.
        out["fusion"] = fusion.model_dump(mode="json")
    return out


def _obligations(spec: YamlPolicySpec) -> dict[str, list[dict[str, Any]]]:
    """Per action, the obligations the engine's plan attaches (engine.core.decide._plan)."""
    ob = spec.obligations
    out: dict[str, list[dict[str, Any]]] = {}
    if ob.step_up:
        out["step_up"] = [
            StepUpObligation(
                methods=tuple(ob.step_up.methods), message=ob.step_up.message
            ).model_dump(mode="json")
        ]
    if ob.review:
        out["review"] = [
            ReviewObligation(
                queue=ob.review.queue,
                sla_minutes=ob.review.sla_minutes,
                checklist=tuple(ob.review.checklist),
            ).model_dump(mode="json")
        ]
    for action, notify in (("block", ob.block), ("warn", ob.warn)):
        if notify:
            out[action] = [
                NotifyObligation(channel=notify.channel, message=notify.message).model_dump(
                    mode="json"
                )
            ]
    return out


# --- conditions as a flat node table -----------------------------------------------------


@dataclass
class _NodeTable:
    """Leaves and combinators with integer ids; ``levels[d-1]`` holds depth-``d`` nodes."""

    policy_id: str
    leaves: list[dict[str, Any]] = field(default_factory=list)
    levels: list[list[dict[str, Any]]] = field(
        default_factory=lambda: [[] for _ in range(MAX_DEPTH)]
    )
    fields: dict[str, list[str]] = field(default_factory=dict)
    signal_fields: dict[str, dict[str, str]] = field(default_factory=dict)
    presence: dict[str, dict[str, str]] = field(default_factory=dict)
    next_id: int = 0

    def root(self, spec: Any, where: str) -> int:
        """Add one ``when`` condition; its root node id."""
        try:
            compile_condition(spec, where)  # the engine's own validation and messages
        except ConditionError as exc:
            raise ExportError(f"{self.policy_id}: {exc}") from None
        node, depth = self._mapping(spec)
        if depth > MAX_DEPTH:
            raise ExportError(
                f"{self.policy_id}: {where}: condition nests {depth} levels of all/any/not; "
                f"the generic Rego evaluator handles at most {MAX_DEPTH}"
            )
        return node

    def document(self) -> dict[str, Any]:
        # Grouped by comparison / combinator, every group present (maybe empty): the module
        # then evaluates each group with one comprehension and no per-node dispatch.
        return {
            "fields": [{"key": k, "path": p} for k, p in self.fields.items()],
            "signal_fields": list(self.signal_fields.values()),
            "presence": list(self.presence.values()),
            "leaves": {
                op: [n for n in self.leaves if n["op"] == op]
                for op in ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in")
            },
            "levels": [
                {op: [n for n in level if n["op"] == op] for op in ("all", "any", "not")}
                for level in self.levels
            ],
        }

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _combine(self, op: str, children: list[tuple[int, int]]) -> tuple[int, int]:
        if op == "all" and len(children) == 1:
            return children[0]  # all of one thing is that thing: no extra level
        depth = 1 + max(d for _, d in children)
        node = {"id": self._id(), "op": op, "children": [c for c, _ in children]}
        if depth <= MAX_DEPTH:
            self.levels[depth - 1].append(node)
        return node["id"], depth

    def _mapping(self, spec: Mapping[str, Any]) -> tuple[int, int]:
        parts: list[tuple[int, int]] = []
        for key, value in spec.items():
            if key in ("all", "any"):
                parts.append(self._combine(key, [self._mapping(v) for v in value]))
            elif key == "not":
                parts.append(self._combine("not", [self._mapping(value)]))
            else:
                parts.append(self._field(str(key), value))
        return self._combine("all", parts)

    def _field(self, path: str, spec: Any) -> tuple[int, int]:
        if isinstance(spec, list):
            spec = {"in": spec}
        elif not isinstance(spec, Mapping):
            spec = {"eq": spec}
        self._register(path)
        return self._combine("all", [self._leaf(path, op, v) for op, v in spec.items()])

    def _leaf(self, path: str, op: str, operand: Any) -> tuple[int, int]:
        levels = ORDINALS.get(path)
        node: dict[str, Any] = {"id": self._id(), "key": path}
        if levels is not None and op in ("gt", "gte", "lt", "lte"):
            # Ordinals compare by rank; Rego gets the labels in range as a set.
            r = levels.index(operand)
            keep = {
                "gt": lambda i: i > r,
                "gte": lambda i: i >= r,
                "lt": lambda i: i < r,
                "lte": lambda i: i <= r,
            }[op]
            node |= {"op": "in", "values": [lv for i, lv in enumerate(levels) if keep(i)]}
        elif op in ("in", "not_in"):
            node |= {"op": op, "values": list(operand)}
        else:
            node |= {"op": op, "value": operand}
        self.leaves.append(node)
        return node["id"], 0

    def _register(self, path: str) -> None:
        m = SIGNAL_FIELD.match(path)
        if m is None:
            self.fields.setdefault(path, path.split("."))
        elif m["attr"] == "present":
            self.presence.setdefault(path, {"key": path, "name": m["name"]})
        else:
            self.signal_fields.setdefault(path, {"key": path, "name": m["name"], "attr": m["attr"]})


# --- evaluating an export from Python (tests, benchmarks) ----------------------------------


def export_reads(data: Mapping[str, Any]) -> set[InputPath]:
    """The input paths the generic module reads for this exported data."""
    reads: set[InputPath] = {
        ("fused", "risk"),
        ("fused", "evidence_mass"),
        ("fused", "degraded"),
        ("signals", ANY, "name"),
    }
    cond = data["conditions"]
    reads |= {tuple(f["path"]) for f in cond["fields"]}
    reads |= {("signals", ANY, f["attr"]) for f in cond["signal_fields"]}
    return reads


def compile_export(policy: Policy) -> CompiledRego:
    """The export compiled by rego-cpp through the Rego backend's own compile path."""
    module, data = export_yaml_policy(policy)
    package = package_of(policy.id)
    problems: list[str] = []
    compiled = compile_rego(
        {"policy.rego": module},
        data,
        package,
        f"liveguard/{package}/decision",
        where=Path(policy.path),
        problems=problems,
    )
    if compiled is None:
        raise ExportError(f"{policy.id}: rego-cpp rejects the exported policy", problems=problems)
    return compiled


class ExportedYamlEvaluator(RegoEvaluator):
    """A YAML policy's export, run in regopy: compiled once, then per request only the
    input conversion and the compiled query (the Rego backend's ``evaluate``)."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(compile_export(policy), policy.fusion)
        self.policy = policy
        # The exporter knows every input path the generic module reads; rego-cpp's plan only
        # sees dynamic ones (input[p[0]][p[1]]) and would keep nearly the whole document, and
        # input conversion is a large part of a regopy evaluation.
        self.projector = Projector(export_reads(self.compiled.data))

    def input_for(self, view: PolicyView, fused: Fused, degraded: bool) -> dict[str, Any]:
        return self.projector.apply(request_input(view, fused, degraded))

    def fields_read(self) -> set[str]:
        return self.policy.fields_read()


class OpaExportedEvaluator:
    """A YAML policy's export, run in OPA's own Go evaluator (``engine.backends.opa.local``)."""

    engine = "opa"

    def __init__(self, policy: Policy) -> None:
        from engine.backends.opa.local import missing_message, opa_engine_class

        cls = opa_engine_class()
        if cls is None:
            raise RuntimeError(missing_message())
        module, data = export_yaml_policy(policy)
        package = package_of(policy.id)
        self.policy = policy
        #: Ids whose condition held, as reported in ``fired`` (like RegoEvaluator.coverage).
        self.coverage: Counter[str] = Counter()
        self.query_path = f"liveguard.{package}.decision"
        self.opa = cls()
        self.opa.add_policy(f"liveguard/{package}/{MODULE_FILE}", module)
        self.opa.add_data(mount_data(package, data))

    def evaluate_document(self, doc: dict[str, Any]) -> Any:
        return self.opa.eval_document(self.query_path, doc)

    def evaluate(self, view: PolicyView, fused: Fused, degraded: bool) -> Outcome:
        outcome, fired = to_outcome(self.evaluate_document(request_input(view, fused, degraded)))
        self.coverage.update(fired)
        return outcome

    def fields_read(self) -> set[str]:
        return self.policy.fields_read()
