"""regorus fails safe on both paths: every error class OPA raises on is policy_eval_error.

OPA's evaluator is the oracle: for each probe it must raise on the same input; ours must
then give the policy's fail_mode with ``policy_eval_error``. The VM path is lax (an error
becomes undefined): where that would turn into a *defined* decision (an erroring helper
under ``not``), ``vm_check`` must have sent the policy to the Engine path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.backends.rego.embedded import mount_data
from engine.backends.rego.regorus_eval import RegorusEvaluator, compile_regorus
from engine.core.decide import decide
from engine.core.errors import PolicyEvalError
from engine.core.models import Action, DecisionRequest
from engine.policy.loader import load_policy_folder
from tests.conftest import request_dict
from tests.engine.rego.conftest import write_policy

HEADER = "package liveguard.probe\n\nimport rego.v1\n\ncfg := data.liveguard_data.probe\n\n"
DATA = {"zero": 0, "one": 1, "n": 5, "s": "abc"}
OK = '{"action": "log", "reasons": [{"code": "r", "message": sprintf("%v", [v])}]}'

#: Each class: a policy whose decision depends on an expression OPA raises on.
PROBES: dict[str, str] = {
    "division_by_zero": f"v := cfg.one / cfg.zero\n\ndecision := {OK}\n",
    "builtin_type_error": f"v := count(cfg.n)\n\ndecision := {OK}\n",
    "builtin_value_error": f"v := to_number(cfg.s)\n\ndecision := {OK}\n",
    "complete_rule_conflict": (
        f'v := "a" if cfg.one > 0\n\nv := "b" if cfg.n > 0\n\ndecision := {OK}\n'
    ),
    "undefined_decision": f"v := 1\n\ndecision := {OK} if cfg.n > 100\n",
}
#: The VM would answer this one with a defined decision (the helper's error is swallowed
#: under ``not``) where OPA raises: a silent allow, unless vm_check keeps it off the VM.
HELPER_UNDER_NOT = (
    "bad if {\n  x := cfg.one / cfg.zero\n  x > 0\n}\n\n"
    'decision := {"action": "log", "reasons": []} if not bad\n'
)


def _opa_raises(opa_engine_cls: Any, src: str) -> bool:
    opa = opa_engine_cls()
    opa.add_policy("policy.rego", src)
    opa.add_data(mount_data("probe", DATA))
    try:
        opa.eval_document("liveguard.probe.decision", {})
    except Exception:
        return True
    return False


def _compiled(tmp_path: Path, src: str, path: str | None) -> RegorusEvaluator:
    problems: list[str] = []
    compiled = compile_regorus(
        {"policy.rego": src},
        DATA,
        "probe",
        "liveguard/probe/decision",
        where=tmp_path,
        problems=problems,
        force_path=path,  # type: ignore[arg-type]
    )
    assert compiled is not None, problems
    assert path is None or compiled.path == path
    loaded = load_policy_folder(
        write_policy(tmp_path, "probe", src, json.dumps(DATA)), rego_engine="regorus"
    )
    return RegorusEvaluator(compiled, loaded.fusion)


@pytest.mark.parametrize("path", ["vm", "engine"])
@pytest.mark.parametrize("probe", sorted(PROBES))
def test_regorus_raises_where_opa_raises(
    probe: str, path: str, tmp_path: Path, opa_engine_cls: Any
) -> None:
    src = HEADER + PROBES[probe]
    assert _opa_raises(opa_engine_cls, src)
    evaluator = _compiled(tmp_path, src, path)
    with pytest.raises(PolicyEvalError):
        evaluator.evaluate_document({})


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_regorus_decision_is_fail_mode_with_policy_eval_error(
    probe: str, tmp_path: Path, opa_engine_cls: Any
) -> None:
    src = HEADER + PROBES[probe]
    assert _opa_raises(opa_engine_cls, src)
    policy = load_policy_folder(
        write_policy(tmp_path, "probe", src, json.dumps(DATA)), rego_engine="regorus"
    )
    decision = decide(DecisionRequest.model_validate(request_dict()), policy)
    assert (decision.action, (decision.error or "").split(":")[0]) == (
        Action.review,
        "policy_eval_error",
    )


def test_vm_would_allow_an_erroring_helper_under_not(tmp_path: Path, opa_engine_cls: Any) -> None:
    """Why vm_check exists: forced onto the VM, this policy answers where OPA raises."""
    src = HEADER + HELPER_UNDER_NOT
    assert _opa_raises(opa_engine_cls, src)
    assert _compiled(tmp_path, src, "vm").evaluate_document({})["action"] == "log"


def test_erroring_helper_under_not_is_sent_to_the_engine_path(tmp_path: Path) -> None:
    policy = load_policy_folder(
        write_policy(tmp_path, "probe", HEADER + HELPER_UNDER_NOT, json.dumps(DATA)),
        rego_engine="regorus",
    )
    assert policy.evaluator.path == "engine"
    assert any(
        "policy.rego:8: division by a non-literal" in w for w in policy.evaluator.compiled.why
    )


def test_erroring_helper_under_not_decides_fail_mode(tmp_path: Path) -> None:
    policy = load_policy_folder(
        write_policy(tmp_path, "probe", HEADER + HELPER_UNDER_NOT, json.dumps(DATA)),
        rego_engine="regorus",
    )
    decision = decide(DecisionRequest.model_validate(request_dict()), policy)
    assert (decision.action, (decision.error or "").split(":")[0]) == (
        Action.review,
        "policy_eval_error",
    )


@pytest.mark.parametrize(
    ("probe", "path"),
    [
        ("division_by_zero", "engine"),
        ("builtin_type_error", "vm"),  # type-total: the type fails for every input, see vm_check
        ("builtin_value_error", "engine"),
        ("complete_rule_conflict", "engine"),
        ("undefined_decision", "vm"),
    ],
)
def test_vm_check_chooses_the_path(probe: str, path: str, tmp_path: Path) -> None:
    policy = load_policy_folder(
        write_policy(tmp_path, "probe", HEADER + PROBES[probe], json.dumps(DATA)),
        rego_engine="regorus",
    )
    assert policy.evaluator.path == path


def test_a_builtin_regorus_lacks_fails_the_load_with_file_and_line(tmp_path: Path) -> None:
    src = HEADER + f"v := crypto.sha256(cfg.s)\n\ndecision := {OK}\n"
    problems: list[str] = []
    compiled = compile_regorus(
        {"policy.rego": src},
        DATA,
        "probe",
        "liveguard/probe/decision",
        where=tmp_path,
        problems=problems,
    )
    assert compiled is None
    assert problems == [
        f"{tmp_path}/policy.rego:7:19: Unknown function: 'crypto.sha256' (regorus lacks "
        "this builtin; set rego_engine: regopy in manifest.yaml)"
    ]


def test_well_typed_policy_takes_the_vm_path(tmp_path: Path) -> None:
    src = HEADER + 'decision := {"action": "log", "reasons": []} if cfg.n > 1\n'
    policy = load_policy_folder(
        write_policy(tmp_path, "probe", src, json.dumps(DATA)), rego_engine="regorus"
    )
    assert (policy.evaluator.path, policy.evaluator.compiled.why) == ("vm", ())


def test_type_error_from_a_lookup_by_request_value_is_kept_off_the_vm(tmp_path: Path) -> None:
    src = (
        HEADER
        + "bad if count(cfg.t[input.session.id]) > 1\n\n"
        + ('decision := {"action": "log", "reasons": []} if not bad\n')
    )
    data = json.dumps({"t": {"a": [1, 2, 3], "b": 5}})
    policy = load_policy_folder(write_policy(tmp_path, "probe", src, data), rego_engine="regorus")
    assert policy.evaluator.path == "engine"


def test_type_error_from_a_lookup_by_request_value_decides_fail_mode(
    tmp_path: Path, opa_engine_cls: Any
) -> None:
    """The VM would answer ``log`` here for session id ``b``; OPA raises; we fail safe."""
    src = (
        HEADER
        + "bad if count(cfg.t[input.session.id]) > 1\n\n"
        + ('decision := {"action": "log", "reasons": []} if not bad\n')
    )
    data = {"t": {"a": [1, 2, 3], "b": 5}}
    opa = opa_engine_cls()
    opa.add_policy("policy.rego", src)
    opa.add_data(mount_data("probe", data))
    with pytest.raises(Exception, match="eval_type_error"):
        opa.eval_document("liveguard.probe.decision", {"session": {"id": "b"}})
    policy = load_policy_folder(
        write_policy(tmp_path, "probe", src, json.dumps(data)), rego_engine="regorus"
    )
    raw = request_dict()
    raw["session"]["id"] = "b"
    decision = decide(DecisionRequest.model_validate(raw), policy)
    assert (decision.action, (decision.error or "").split(":")[0]) == (
        Action.review,
        "policy_eval_error",
    )
