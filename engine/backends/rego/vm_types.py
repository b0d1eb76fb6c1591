"""Builtin arguments whose JSON type can change with the request: kept off regorus's VM.

``vm_check`` allows type-total builtins on the VM because "a type error happens for every
input that reaches it". That holds for values whose type is fixed by the request schema or
by data.json, not for a value the request *selects* from members of different types:
``count(cfg.t[input.k])`` with ``t = {"a": [1], "b": 5}`` raises for ``k = "b"`` only, and
under ``not`` the VM turns that into a defined decision where OPA raises.

So every expression gets an abstract value, per rule and flow-insensitively:

* ``Data(values)``: the candidate values it can take, from data.json or a constant literal
  (a constant path has one candidate; a look-up by a run-time key or an iteration takes
  every member of every candidate);
* ``Fixed(kind)``: its type is fixed whatever the request (``input`` fields by the request
  schema, builtin results, arithmetic, comparisons, comprehensions); members of a fixed
  value are fixed only for the schema's lists (``signals``, ``contributions``,
  ``evidence``) and builtin results, else unknown;
* ``VARY``: unknown, may vary (function parameters, user function results, values of a
  rule whose definitions differ in kind, members of anything not known).

A builtin call (other than the type predicates) or an arithmetic operand whose argument is
``VARY``, or ``Data`` whose candidates differ in JSON kind (for builtins that look inside,
in shape at any depth), is an issue: the policy takes the Engine path.

Past ~400 lines on purpose: it is one abstract interpretation (values, rules, sinks) that
reads as a whole; split, each part would need the others to be understood.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.backends.rego.vm_check import (
    VmIssue,
    _head_kind,
    _head_name,
    _line,
    _nodes,
    _ref_name,
    _spec_head,
)


@dataclass(frozen=True)
class Data:
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Fixed:
    kind: str | None  # "array", "object", "set", "string", "number", "boolean", or unknown
    members_fixed: bool = False


class _Vary:
    def __repr__(self) -> str:
        return "VARY"


VARY = _Vary()
Abstract = Data | Fixed | _Vary

_MAX_CANDIDATES = 20_000
#: Never raise whatever their arguments.
_NEVER_RAISE = frozenset(
    {"is_array", "is_boolean", "is_null", "is_number", "is_object", "is_set", "is_string",
     "type_name", "json.marshal"}
)  # fmt: skip
#: Look inside their arguments' members (concat's strings, sum's numbers, …): the members'
#: shape must not vary either.
_DEEP = frozenset(
    {"all", "any", "concat", "intersection", "max", "min", "product", "sort", "sum", "union"}
)
#: Result types (kind) of builtins whose result type does not depend on their arguments.
_RESULT_KIND: dict[str, str] = {
    "abs": "number", "all": "boolean", "any": "boolean", "ceil": "number", "concat": "string",
    "contains": "boolean", "count": "number", "endswith": "boolean", "floor": "number",
    "indexof": "number", "is_array": "boolean", "is_boolean": "boolean", "is_null": "boolean",
    "is_number": "boolean", "is_object": "boolean", "is_set": "boolean",
    "is_string": "boolean", "json.marshal": "string", "lower": "string",
    "numbers.range": "array", "object.keys": "set", "product": "number", "replace": "string",
    "round": "number", "split": "array", "sprintf": "string", "startswith": "boolean",
    "strings.count": "number", "sum": "number", "trim": "string", "trim_left": "string",
    "trim_prefix": "string", "trim_right": "string", "trim_space": "string",
    "trim_suffix": "string", "type_name": "string", "upper": "string",
}  # fmt: skip
#: Builtins returning a container of their arguments' members: its kind is fixed, its
#: members are fixed when the arguments' are.
_CONTAINER_RESULT: dict[str, str] = {
    "array.concat": "array", "array.reverse": "array", "array.slice": "array",
    "intersection": "set", "object.remove": "object", "object.union": "object",
    "sort": "array", "union": "set",
}  # fmt: skip
_INPUT_LISTS = frozenset({"signals", "contributions", "evidence"})


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _shape(v: Any) -> Any:
    if isinstance(v, list):
        return ("array", _merge_all(_shape(x) for x in v))
    if isinstance(v, dict):
        return ("object", {k: _shape(x) for k, x in v.items()})
    return _kind(v)


_CONFLICT = "<conflict>"


def _merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None or a == b:
        return a
    if isinstance(a, str) or isinstance(b, str) or a[0] != b[0]:
        return _CONFLICT
    if a[0] == "array":
        return ("array", _merge(a[1], b[1]))
    keys = {**a[1], **b[1]}
    return ("object", {k: _merge(a[1].get(k), b[1].get(k)) for k in keys})


def _merge_all(shapes: Any) -> Any:
    out = None
    for s in shapes:
        out = _merge(out, s)
    return out


def _conflicts(shape: Any) -> bool:
    if shape == _CONFLICT:
        return True
    if shape is None or isinstance(shape, str):
        return False
    if shape[0] == "array":
        return _conflicts(shape[1])
    return any(_conflicts(s) for s in shape[1].values())


def _members(a: Abstract) -> Abstract:
    if isinstance(a, Data):
        out: list[Any] = []
        for v in a.values:
            if isinstance(v, dict):
                out.extend(v.values())
            elif isinstance(v, list):
                out.extend(v)
            if len(out) > _MAX_CANDIDATES:
                return VARY
        return Data(tuple(out))
    if isinstance(a, Fixed) and a.members_fixed:
        return Fixed(None, True)
    return VARY


def _field(a: Abstract, key: str) -> Abstract:
    if isinstance(a, Data):
        out = []
        for v in a.values:
            if isinstance(v, dict) and key in v:
                out.append(v[key])
            elif isinstance(v, list) and key.isdigit() and int(key) < len(v):
                out.append(v[int(key)])
        return Data(tuple(out))
    if isinstance(a, Fixed):
        return Fixed(None, a.members_fixed) if a.members_fixed else VARY
    return VARY


def _join(a: Abstract | None, b: Abstract) -> Abstract:
    if a is None:
        return b
    if isinstance(a, Data) and isinstance(b, Data):
        return Data(a.values + b.values)
    if isinstance(a, Fixed) and isinstance(b, Fixed) and a.kind == b.kind and a.kind:
        return Fixed(a.kind, a.members_fixed and b.members_fixed)
    if (isinstance(a, Data) and isinstance(b, Fixed)) or (
        isinstance(a, Fixed) and isinstance(b, Data)
    ):
        d, f = (a, b) if isinstance(a, Data) else (b, a)
        assert isinstance(d, Data) and isinstance(f, Fixed)
        if f.kind and {_kind(v) for v in d.values} <= {f.kind}:
            return Fixed(f.kind, False)
    return VARY


def _constant(node: Any) -> tuple[bool, Any]:
    """(True, value) for a constant JSON literal node."""
    if not isinstance(node, dict):
        return False, None
    for kind in ("Number", "String", "Bool"):
        if kind in node:
            return True, node[kind]["value"]
    if "Null" in node:
        return True, None
    if "Array" in node:
        items = [_constant(x) for x in node["Array"].get("items", [])]
        return all(ok for ok, _ in items), [v for _, v in items]
    if "Object" in node:
        out = {}
        for field in node["Object"].get("fields", []):
            parts = [x for x in field if isinstance(x, dict) and "line" not in x]
            if len(parts) != 2:
                return False, None
            (ok_k, k), (ok_v, v) = _constant(parts[0]), _constant(parts[1])
            if not (ok_k and ok_v and isinstance(k, str)):
                return False, None
            out[k] = v
        return True, out
    return False, None


class _Module:
    def __init__(self, module: dict[str, Any], data: Any) -> None:
        self.ast = module["ast"]
        self.file = module.get("source", {}).get("file", "?")
        self.contents = module.get("source", {}).get("contents", "")
        self.data = data
        self.aliases: dict[str, tuple[str, ...]] = {}
        self.functions = {str(_head_name(r)) for r in self.ast["rules"] if _head_kind(r) == "Func"}
        self.rules: dict[str, Abstract] = {}
        self.issues: list[VmIssue] = []
        for imp in self.ast.get("imports", []):
            path = self._const_path(imp.get("refr", {}))
            span = imp.get("as")
            if path and path[0] == "data":
                name = (  # spans are byte offsets
                    self.contents.encode()[span["start"] : span["end"]].decode()
                    if isinstance(span, dict) and "start" in span
                    else path[-1]
                )
                self.aliases[name] = path
        for _ in range(8):  # rule values to a fixpoint (small: rules are few and shallow)
            before = dict(self.rules)
            for rule in self.ast["rules"]:
                name = _head_name(rule)
                if name is None or name in self.functions:
                    continue
                self.rules[name] = self._rule_value(name)
            if self.rules == before:
                break
        else:
            self.rules = dict.fromkeys(self.rules, VARY)
        for rule in self.ast["rules"]:
            env = self._locals(rule)
            for node in _nodes(rule):
                self._sink(node, env)

    def _const_path(self, node: Any) -> tuple[str, ...] | None:
        if not isinstance(node, dict):
            return None
        if "Var" in node:
            return (str(node["Var"]["value"]),)
        if "RefDot" in node:
            base = self._const_path(node["RefDot"]["refr"])
            return (*base, str(node["RefDot"]["field"][-1])) if base else None
        return None

    def _data_at(self, path: tuple[str, ...]) -> Abstract:
        value: Abstract = Data((self.data,))
        for step in path[1:]:
            value = _field(value, step)
        return value

    def _rule_value(self, name: str) -> Abstract:
        out: Abstract | None = None
        for rule in self.ast["rules"]:
            if _head_name(rule) != name:
                continue
            env = self._locals(rule)
            head = _spec_head(rule) or {}
            if "Set" in head:  # a partial set: a set, of fixed members when its keys are
                key = self.eval(head["Set"].get("key"), env)
                out = _join(out, Fixed("set", not _varies(key, deep=True)))
            for value in _values(rule):
                out = _join(out, self.eval(value, env))
        return out if out is not None else Fixed("boolean")  # `x if …`: true

    def _locals(self, rule: dict[str, Any]) -> dict[str, Abstract]:
        env: dict[str, Abstract] = {}
        head = _spec_head(rule) or {}
        if "Func" in head:
            for arg in head["Func"].get("args", []):
                for n in _nodes(arg):
                    if "Var" in n:
                        env[str(n["Var"]["value"])] = VARY
        queries = [
            n["query"]
            for n in _nodes(rule)
            if isinstance(n.get("query"), dict) and "stmts" in n["query"]
        ]
        params = dict(env)
        for _ in range(8):  # each pass reads the previous pass's bindings
            new: dict[str, Abstract] = dict(params)
            for query in queries:
                for stmt in query.get("stmts", []):
                    self._bind(stmt.get("literal", {}), env, new)
            if new == env:
                return env
            env = new
        return dict.fromkeys(env, VARY)

    def _bind(
        self, lit: dict[str, Any], env: dict[str, Abstract], out: dict[str, Abstract]
    ) -> None:
        """Bindings of one statement, evaluated in ``env``, joined into ``out``."""

        def put(target: Any, value: Abstract) -> None:
            if isinstance(target, dict) and "Var" in target:
                name = str(target["Var"]["value"])
                out[name] = _join(out.get(name), value)
            elif target is not None:  # destructuring: each variable gets "may vary"
                for n in _nodes(target):
                    if "Var" in n:
                        out[str(n["Var"]["value"])] = VARY

        if "SomeIn" in lit:
            some = lit["SomeIn"]
            coll = self.eval(some["collection"], env)
            put(some.get("value"), _members(coll))
            if some.get("key") is not None:
                put(some["key"], Fixed(None))  # object keys and array indexes
        elif "Expr" in lit and "AssignExpr" in lit["Expr"]["expr"]:
            a = lit["Expr"]["expr"]["AssignExpr"]
            put(a["lhs"], self.eval(a["rhs"], env))
            if a.get("op") == "Eq":
                put(a["rhs"], self.eval(a["lhs"], env))

    def eval(self, node: Any, env: dict[str, Abstract]) -> Abstract:
        ok, value = _constant(node)
        if ok:
            return Data((value,))
        if not isinstance(node, dict):
            return VARY
        if "Var" in node:
            name = str(node["Var"]["value"])
            if name in env:
                return env[name]
            if name == "input":
                return Fixed("object", False)
            if name == "data":
                return Data((self.data,))
            if name in self.aliases:
                return self._data_at(self.aliases[name])
            if name in self.rules:
                return self.rules[name]
            if any(r.startswith(name + ".") for r in self.rules):
                return VARY  # a dotted rule head (``a.b := …``): not followed
            return Fixed(None)  # a key bound by iterating a reference (string or index)
        path = self._const_path(node)
        if path and path[0] in self.aliases:
            path = self.aliases[path[0]] + path[1:]
        if path and path[0] == "data" and len(path) > 1 and path[1] != "liveguard_data":
            return VARY  # rules reached through data.<package>: not followed
        if "RefDot" in node:
            return self._ref(node["RefDot"]["refr"], str(node["RefDot"]["field"][-1]), env)
        if "RefBrack" in node:
            index = node["RefBrack"]["index"]
            ok, key = _constant(index)
            if ok and isinstance(key, str | int) and not isinstance(key, bool):
                return self._ref(node["RefBrack"]["refr"], str(key), env)
            base = self.eval(node["RefBrack"]["refr"], env)
            path = self._const_path(node["RefBrack"]["refr"])
            if path and path[0] == "input":
                return Fixed(None, True) if path[-1] in _INPUT_LISTS else VARY
            return _members(base)
        if "Call" in node:
            name = _ref_name(node["Call"].get("fcn", {}))
            if name in self.functions or name is None:
                return VARY
            kind = _RESULT_KIND.get(name)
            if kind is not None:
                return Fixed(kind, True)
            params = [self.eval(p, env) for p in node["Call"].get("params", [])]
            if name in _CONTAINER_RESULT:
                fixed = not any(_varies(_members(p), deep=True) for p in params)
                return Fixed(_CONTAINER_RESULT[name], fixed)
            return VARY  # e.g. object.get: which member it returns depends on the request
        if "ArithExpr" in node:
            return Fixed("number")
        if "BoolExpr" in node or "NotExpr" in node:
            return Fixed("boolean")
        for kind, tag, term in (
            ("ArrayCompr", "array", "term"),
            ("SetCompr", "set", "term"),
            ("ObjectCompr", "object", "value"),
        ):
            if kind in node:
                # Its members are the term's values (the rule's locals include the
                # comprehension's own).
                return Fixed(tag, not _varies(self.eval(node[kind].get(term), env), deep=True))
        # A literal with run-time parts: its members are positions, not alternatives, so
        # it is fixed when each part is (a type error in it would happen every time).
        for kind, tag in (("Array", "array"), ("Set", "set")):
            if kind in node:
                items = node[kind].get("items", [])
                return Fixed(tag, not any(_varies(self.eval(x, env), deep=True) for x in items))
        if "Object" in node:
            parts = [
                x
                for field in node["Object"].get("fields", [])
                for x in field
                if isinstance(x, dict) and "line" not in x
            ]
            return Fixed("object", not any(_varies(self.eval(x, env), deep=True) for x in parts))
        return VARY

    def _ref(self, refr: Any, key: str, env: dict[str, Abstract]) -> Abstract:
        path = self._const_path(refr)
        if path and path[0] == "input":
            # The request schema fixes every field's type; its lists hold like members.
            return Fixed(None, key in _INPUT_LISTS)
        return _field(self.eval(refr, env), key)

    def _sink(self, node: dict[str, Any], env: dict[str, Abstract]) -> None:
        if "Call" in node:
            name = _ref_name(node["Call"].get("fcn", {}))
            if name is None or name in self.functions or name in _NEVER_RAISE:
                return
            for param in node["Call"].get("params", []):
                if _varies(self.eval(param, env), deep=name in _DEEP):
                    self.issues.append(
                        VmIssue(
                            self.file,
                            _line(node),
                            f"builtin {name}() on a value whose type can change with the "
                            "request (selected from members of different types)",
                        )
                    )
                    return
        elif "ArithExpr" in node:
            a = node["ArithExpr"]
            if any(_varies(self.eval(a.get(side), env), deep=False) for side in ("lhs", "rhs")):
                self.issues.append(
                    VmIssue(
                        self.file,
                        _line(node),
                        "arithmetic on a value whose type can change with the request",
                    )
                )


def _values(rule: dict[str, Any]) -> list[Any]:
    """A rule's value expressions: head, else branches, default (``x if …`` is true)."""
    if "Default" in rule:
        return [rule["Default"].get("value")]
    head = _spec_head(rule) or {}
    kind = next(iter(head), None)
    h = head.get(kind, {}) if kind else {}
    value = h.get("key") if kind == "Set" else (h.get("assign") or {}).get("value")
    values = [value if value is not None else {"Bool": {"value": True}}]
    for body in rule["Spec"].get("bodies") or []:
        if body.get("is_else") and body.get("assign"):
            values.append(body["assign"].get("value"))
    if kind == "Set":
        return []  # a partial set is a set whatever its members
    return values


def _varies(a: Abstract, *, deep: bool) -> bool:
    if isinstance(a, _Vary):
        return True
    if isinstance(a, Fixed):
        return deep and not a.members_fixed and a.kind in ("array", "set", "object", None)
    if len({_kind(v) for v in a.values}) > 1:
        return True
    return deep and _conflicts(_merge_all(_shape(v) for v in a.values))


def type_issues(ast_json: str, data: Any) -> list[VmIssue]:
    """Builtin arguments and arithmetic operands whose type can change with the request.

    ``ast_json`` is ``regorus.Engine().get_ast_as_json()``; ``data`` the mounted data."""
    issues: list[VmIssue] = []
    for module in json.loads(ast_json):
        issues.extend(_Module(module, data).issues)
    return sorted(set(issues), key=lambda i: (i.file, i.line, i.why))
