"""Which Rego policies regorus's bytecode VM may evaluate without weakening fail-safety.

The VM is 3–5× faster than OPA's evaluator but not strict: where OPA raises (division
by zero, a builtin given a bad value, a complete rule or function with two values) the
VM makes the failing expression undefined and carries on. When that happens inside the
``decision`` rule itself the whole decision is undefined, which the engine already
treats as ``policy_eval_error``. It is unsafe only when the failure hides in a helper
rule, a comprehension, an ``else`` branch or under ``not``: then the VM can return a
*defined* decision where OPA would fail — a silent allow.

So a policy takes the VM path only when none of its rules can raise at run time except
through the types of its arguments. Types are not a run-time risk here: ``input`` is
built by the engine from a strictly validated request (every field has one JSON type)
and ``data`` is fixed at load, so a type error happens for every input that reaches it
and the OPA-oracle tests see it — except where the request *selects* the value among
members of different types (``count(cfg.t[input.k])``): ``engine.backends.rego.vm_types``
refuses those. What is refused here (with file and line) is what can fail on some
*values* only:

- division or remainder by anything but a non-zero number literal;
- a call to a builtin outside ``TYPE_TOTAL_BUILTINS`` (builtins whose errors depend only
  on argument types), e.g. ``to_number``, ``regex.match`` on a variable pattern,
  ``substring``, ``format_int``, or anything the VM lacks;
- a complete rule or function defined more than once (two bodies can both hold with
  different values: an OPA conflict), and partial object rules (duplicate keys);
- ``with`` (the VM does not compile it), ``print`` and ``walk``.

Everything else — comparisons, ``not``, ``some … in``, comprehensions, ``else`` chains,
``default``, arithmetic by literals, lookups — cannot raise on a well-typed input.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Builtins whose run-time errors depend only on the types of their arguments (and that
#: regorus's VM implements). ``numbers.range`` is here: its cost is the evaluation
#: budget's business, it cannot raise on integers.
TYPE_TOTAL_BUILTINS: frozenset[str] = frozenset(
    {
        "abs", "all", "any", "array.concat", "array.reverse", "array.slice", "ceil",
        "concat", "contains", "count", "endswith", "floor", "indexof", "intersection",
        "is_array", "is_boolean", "is_null", "is_number", "is_object", "is_set",
        "is_string", "json.marshal", "lower", "max", "min", "numbers.range", "object.get",
        "object.keys", "object.remove", "object.union", "product", "replace", "round",
        "sort", "split", "sprintf", "startswith", "strings.count", "sum", "trim",
        "trim_left", "trim_prefix", "trim_right", "trim_space", "trim_suffix",
        "type_name", "union", "upper",
    }
)  # fmt: skip
_FORBIDDEN_CALLS = frozenset({"print", "walk"})


@dataclass(frozen=True, slots=True)
class VmIssue:
    file: str
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.why}"


def vm_issues(ast_json: str) -> list[VmIssue]:
    """Every construct that keeps a policy off the VM path (empty: the VM is safe).

    ``ast_json`` is ``regorus.Engine().get_ast_as_json()`` after adding the modules.
    """
    issues: list[VmIssue] = []
    for module in json.loads(ast_json):
        file = module.get("source", {}).get("file", "?")
        ast = module["ast"]
        functions = {_head_name(r) for r in ast["rules"] if _head_kind(r) == "Func"}
        definitions: Counter[str] = Counter()
        first_line: dict[str, int] = {}
        for rule in ast["rules"]:
            kind, name = _head_kind(rule), _head_name(rule)
            if kind in ("Compr", "Func") and name is not None:
                definitions[name] += 1
                first_line.setdefault(name, _line(rule))
            if kind == "Compr" and _is_partial_object(rule):
                issues.append(
                    VmIssue(file, _line(rule), f"partial object rule {name!r} (duplicate keys)")
                )
            issues.extend(_walk_rule(rule, file, functions))
        for name, n in definitions.items():
            if n > 1:
                issues.append(
                    VmIssue(
                        file,
                        first_line[name],
                        f"{name!r} is defined {n} times (its bodies can conflict); "
                        "write one rule with an else chain",
                    )
                )
    return sorted(set(issues), key=lambda i: (i.file, i.line, i.why))


def _spec_head(rule: dict[str, Any]) -> dict[str, Any] | None:
    spec = rule.get("Spec")
    return spec["head"] if spec else None


def _head_kind(rule: dict[str, Any]) -> str | None:
    head = _spec_head(rule)
    return next(iter(head)) if head else None


def _head_name(rule: dict[str, Any]) -> str | None:
    head = _spec_head(rule)
    if head is None:
        default = rule.get("Default")
        return _ref_name(default["refr"]) if default else None
    return _ref_name(next(iter(head.values()))["refr"])


def _is_partial_object(rule: dict[str, Any]) -> bool:
    head = _spec_head(rule)
    return bool(head) and "RefBrack" in head["Compr"]["refr"]


def _ref_name(node: dict[str, Any]) -> str | None:
    """``a``, ``a.b.c`` for Var/RefDot chains; None for anything else."""
    if "Var" in node:
        return str(node["Var"]["value"])
    if "RefDot" in node:
        base = _ref_name(node["RefDot"]["refr"])
        field = node["RefDot"]["field"]
        return f"{base}.{field[-1]}" if base is not None else None
    if "RefBrack" in node:
        return _ref_name(node["RefBrack"]["refr"])
    return None


def _line(node: Any) -> int:
    for sub in _nodes(node):
        span = sub.get("span")
        if isinstance(span, dict) and "line" in span:
            return int(span["line"])
    return 0


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            yield cur
            stack.extend(reversed(list(cur.values())))
        elif isinstance(cur, list):
            stack.extend(reversed(cur))


def _walk_rule(rule: dict[str, Any], file: str, functions: set[str | None]) -> Iterator[VmIssue]:
    for node in _nodes(rule):
        for kind, body in node.items():
            if not isinstance(body, dict):
                continue
            if kind == "ArithExpr" and body.get("op") in ("Div", "Mod"):
                rhs = body.get("rhs", {})
                value = rhs.get("Number", {}).get("value") if isinstance(rhs, dict) else None
                if not isinstance(value, int | float) or value == 0:
                    what = "division" if body["op"] == "Div" else "remainder"
                    yield VmIssue(file, _line(body), f"{what} by a non-literal (can fail on zero)")
            elif kind == "Call":
                name = _ref_name(body.get("fcn", {}))
                if name in _FORBIDDEN_CALLS:
                    yield VmIssue(file, _line(body), f"{name}() is not compiled by the VM")
                elif name not in TYPE_TOTAL_BUILTINS and name not in functions:
                    yield VmIssue(
                        file,
                        _line(body),
                        f"builtin {name}() can fail on some values (not type-total)",
                    )
        mods = node.get("with_mods")
        if mods:
            yield VmIssue(file, _line(node), "'with' is not compiled by the VM")
