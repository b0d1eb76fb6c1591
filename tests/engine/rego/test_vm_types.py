"""vm_types: a builtin argument or arithmetic operand whose JSON type the request can change
keeps a policy off regorus's VM; data whose members share one shape does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import regorus

from engine.backends.rego.embedded import mount_data
from engine.backends.rego.vm_types import type_issues
from tests.engine.rego.conftest import POLICIES, TWINS

HEADER = "package liveguard.probe\nimport rego.v1\ncfg := data.liveguard_data.probe\n"
MIXED = {"t": {"a": [1, 2, 3], "b": 5}}
ALIKE = {"t": {"a": [1, 2, 3], "b": [5]}}
RECORDS_MIXED = {"l": [{"k": "a", "v": [1]}, {"k": "b", "v": 2}]}
RECORDS_ALIKE = {"l": [{"k": "a", "v": [1]}, {"k": "b", "v": [2]}]}

#: (rule, data, kept off the VM)
CASES = {
    "lookup_in_mixed_members": ("bad if count(cfg.t[input.k]) > 1", MIXED, True),
    "lookup_in_alike_members": ("bad if count(cfg.t[input.k]) > 1", ALIKE, False),
    "lookup_through_a_local": ("bad if { v := cfg.t[input.k]; count(v) > 1 }", MIXED, True),
    "filtered_iteration_mixed": (
        "bad if { some x in cfg.l; x.k == input.k; count(x.v) > 1 }",
        RECORDS_MIXED,
        True,
    ),
    "filtered_iteration_alike": (
        "bad if { some x in cfg.l; x.k == input.k; count(x.v) > 1 }",
        RECORDS_ALIKE,
        False,
    ),
    "arithmetic_on_a_lookup": (
        "y := cfg.t[input.k]\nbad if y + 1 > 2",
        {"t": {"a": 1, "b": "x"}},
        True,
    ),
    "rule_of_two_kinds": ('x := 1 if input.a else := "s"\nbad if count(x) > 0', {}, True),
    "sum_over_mixed_list": ("bad if sum([v | some v in cfg.l]) > 1", {"l": [1, "a"]}, True),
    "sum_over_numbers": ("bad if sum([v | some v in cfg.l]) > 1", {"l": [1, 2]}, False),
    "object_get_by_request_key": (
        "bad if count(object.get(cfg.t, input.k, [])) > 1",
        MIXED,
        True,
    ),
    "input_field_by_schema": ("bad if count(input.session.id) > 1", {}, False),
    "input_field_by_request_key": ("bad if count(input.session[input.k]) > 1", {}, True),
    "input_list_members": ("bad if { some s in input.signals; count(s.evidence) > 1 }", {}, False),
    "function_parameter": ("f(a) := count(a)\nbad if f(input.x) > 0", {}, True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_type_issues_keep_request_dependent_types_off_the_vm(case: str) -> None:
    rule, data, off_vm = CASES[case]
    engine = regorus.Engine()
    engine.add_policy("p.rego", HEADER + rule + "\ndecision := 1 if not bad\n")
    issues = type_issues(engine.get_ast_as_json(), mount_data("probe", data))
    assert bool(issues) == off_vm, [str(i) for i in issues]


@pytest.mark.parametrize("rego_id", sorted(TWINS))
def test_twins_have_no_request_dependent_types(rego_id: str) -> None:
    engine = regorus.Engine()
    for path in sorted((POLICIES / rego_id).glob("*.rego")):
        engine.add_policy(path.name, path.read_text(encoding="utf-8"))
    data = json.loads((POLICIES / rego_id / "data.json").read_text(encoding="utf-8"))
    package = rego_id.replace("-", "_")
    assert type_issues(engine.get_ast_as_json(), mount_data(package, data)) == []


def test_issue_names_file_and_line(tmp_path: Path) -> None:
    engine = regorus.Engine()
    engine.add_policy("p.rego", HEADER + "bad if count(cfg.t[input.k]) > 1\n")
    [issue] = type_issues(engine.get_ast_as_json(), mount_data("probe", MIXED))
    assert str(issue).startswith("p.rego:4: builtin count() on a value whose type can change")
