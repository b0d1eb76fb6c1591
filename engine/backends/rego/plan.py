"""Which parts of ``input`` a compiled Rego policy can read, from its execution plan.

rego-cpp compiles a policy to OPA's intermediate representation (``plan.json``: plans,
functions, statements over numbered locals). In every plan and rule function local 0 is
``input``. A small flow-insensitive alias analysis follows it: ``DotStmt`` with a constant
key extends a path, a dynamic key or a ``ScanStmt`` reads "any child" (``*``), and any other
use of an input-derived local (comparison, builtin call, put into a result, length, …)
reads that whole subtree. Values flow into user functions through their parameters and
out through their return local, iterated to a fixpoint.

The result is conservative: it can only over-approximate what the policy reads. The engine
uses it twice: to send the policy only the paths it can read (a further minimization that
also makes input conversion cheap), and to tell ``governance check`` which data-flow fields
the policy reads. The oracle tests compare decisions on the pruned input (regopy) against
OPA's evaluator on the full input, which would expose an unsound analysis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Path = tuple[str, ...]
ANY = "*"

#: Statement fields that name a local (an int) rather than an operand.
_LOCAL_FIELDS = ("source", "object", "array", "set", "value", "key")


class PlanShapeError(ValueError):
    """The plan did not look like OPA IR; callers fall back to sending the whole input."""


def _operand_local(op: Any) -> int | None:
    if isinstance(op, Mapping) and op.get("type") == "local":
        return int(op["value"])
    return None


class _Analysis:
    def __init__(self, plan: Mapping[str, Any]) -> None:
        try:
            self.strings: list[str] = [s["value"] for s in plan["static"]["strings"]]
            self.funcs: dict[str, Mapping[str, Any]] = {
                f["name"]: f for f in plan["funcs"]["funcs"] or []
            }
            self.plans: list[Mapping[str, Any]] = plan["plans"]["plans"] or []
        except (KeyError, TypeError) as exc:
            raise PlanShapeError(f"unexpected plan shape: {exc}") from exc
        # (scope, local) -> input paths it may hold; scope is a function name or "plan:<n>".
        self.alias: dict[tuple[str, int], set[Path]] = {}
        self.reads: set[Path] = set()
        self.returns: dict[str, set[Path]] = {}
        self.changed = True

    def _add(self, key: tuple[str, int], paths: Iterable[Path]) -> None:
        cur = self.alias.setdefault(key, set())
        new = set(paths) - cur
        if new:
            cur |= new
            self.changed = True

    def _read(self, paths: Iterable[Path]) -> None:
        new = set(paths) - self.reads
        if new:
            self.reads |= new
            self.changed = True

    def run(self) -> set[Path]:
        for name, fn in self.funcs.items():
            params = fn.get("params") or []
            if params and name.startswith("g0.data."):
                # Rule functions get (input, data) as their first two parameters.
                self._add((name, int(params[0])), {()})
        for i, _plan in enumerate(self.plans):
            self._add((f"plan:{i}", 0), {()})
        rounds = 0
        while self.changed:
            self.changed = False
            rounds += 1
            if rounds > 100:
                raise PlanShapeError("alias analysis did not converge")
            for i, plan in enumerate(self.plans):
                self._blocks(f"plan:{i}", plan.get("blocks") or [])
            for name, fn in self.funcs.items():
                self._blocks(name, fn.get("blocks") or [])
                ret = fn.get("return")
                if ret is not None:
                    paths = self.alias.get((name, int(ret)), set())
                    cur = self.returns.setdefault(name, set())
                    if paths - cur:
                        cur |= paths
                        self.changed = True
        return self.reads

    def _blocks(self, scope: str, blocks: Iterable[Mapping[str, Any]]) -> None:
        for block in blocks:
            for stmt in block.get("stmts") or []:
                self._stmt(scope, stmt["type"], stmt["stmt"])

    def _paths(self, scope: str, local: int | None) -> set[Path]:
        if local is None:
            return set()
        return self.alias.get((scope, local), set())

    def _stmt(self, scope: str, kind: str, s: Mapping[str, Any]) -> None:
        if kind == "DotStmt":
            key = s["key"]
            # An input value used as a key (``ranks[input.identity.assurance]``) is read whole.
            self._read(self._paths(scope, _operand_local(key)))
            src = self._paths(scope, _operand_local(s["source"]))
            if not src:
                return
            if isinstance(key, Mapping) and key.get("type") == "string_index":
                step = self.strings[int(key["value"])]
            else:
                step = ANY
            self._add((scope, int(s["target"])), {(*p, step) for p in src})
        elif kind == "ScanStmt":
            src = self._paths(scope, int(s["source"]))
            if src:
                self._add((scope, int(s["value"])), {(*p, ANY) for p in src})
            self._blocks(scope, [s["block"]])
        elif kind in ("AssignVarStmt", "AssignVarOnceStmt"):
            src = self._paths(scope, _operand_local(s["source"]))
            if src:
                self._add((scope, int(s["target"])), src)
        elif kind == "CallStmt":
            self._call(scope, s)
        elif kind in ("BlockStmt",):
            self._blocks(scope, s.get("blocks") or [])
        elif kind == "NotStmt":
            self._blocks(scope, [s["block"]])
        elif kind == "WithStmt":
            self._blocks(scope, [s["block"]])
            self._read(self._paths(scope, _operand_local(s.get("value"))))
        elif kind in ("IsDefinedStmt", "IsUndefinedStmt"):
            # Definedness of a path needs only that path (the pruned input keeps it whole).
            self._read(self._paths(scope, int(s["source"])))
        else:
            # Any other use (compare, length, type test, insert into a value, return, …):
            # the whole subtree behind an input-derived local may matter.
            self._read(self._uses(scope, s))

    def _uses(self, scope: str, s: Mapping[str, Any]) -> set[Path]:
        out: set[Path] = set()
        for field, value in s.items():
            if field in ("file", "row", "col", "capacity"):
                continue
            local = _operand_local(value)
            if local is None and field in _LOCAL_FIELDS and isinstance(value, int):
                local = value
            out |= self._paths(scope, local)
            if isinstance(value, list):
                for item in value:
                    out |= self._paths(scope, _operand_local(item))
        return out

    def _call(self, scope: str, s: Mapping[str, Any]) -> None:
        func = s["func"]
        args = s.get("args") or []
        target = self.funcs.get(func)
        if target is None:
            # A builtin: it may look at the whole of every input-derived argument.
            for a in args:
                self._read(self._paths(scope, _operand_local(a)))
            return
        params = target.get("params") or []
        for a, p in zip(args, params, strict=False):
            paths = self._paths(scope, _operand_local(a))
            if paths:
                self._add((func, int(p)), paths)
        ret = self.returns.get(func)
        if ret:
            self._add((scope, int(s["result"])), ret)


def input_reads(plan: Mapping[str, Any]) -> set[Path]:
    """Every input path (``*`` = any key/element) whose whole subtree the policy may use."""
    return _Analysis(plan).run()


def collapse(paths: Iterable[Path]) -> set[Path]:
    """Drop paths already covered by a shorter one (``identity`` covers ``identity.x``)."""
    out: set[Path] = set()
    for p in sorted(set(paths), key=len):
        if not any(_covers(q, p) for q in out):
            out.add(p)
    return out


def _covers(prefix: Path, path: Path) -> bool:
    if len(prefix) > len(path):
        return False
    return all(a in (b, ANY) for a, b in zip(prefix, path, strict=False))


class Projector:
    """Applies a set of read paths to an input document (a copy with only those subtrees)."""

    __slots__ = ("_tree", "everything")

    def __init__(self, reads: Iterable[Path]) -> None:
        reads = collapse(reads)
        self.everything = () in reads
        tree: dict[str, Any] = {}
        for path in reads:
            node = tree
            for i, step in enumerate(path):
                if i == len(path) - 1:
                    node[step] = True
                else:
                    child = node.get(step)
                    if child is True:
                        break
                    node = node.setdefault(step, {})
        self._tree = tree

    def apply(self, doc: Any) -> Any:
        if self.everything:
            return doc
        return _project(doc, self._tree)


def _project(doc: Any, tree: dict[str, Any]) -> Any:
    wildcard = tree.get(ANY)
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            node = _merge(tree.get(key), wildcard)
            if node is None:
                continue
            out[key] = value if node is True else _project(value, node)
        return out
    if isinstance(doc, list):
        if wildcard is None:
            return []
        return [v if wildcard is True else _project(v, wildcard) for v in doc]
    return doc


def _merge(a: Any, b: Any) -> Any:
    """Union of two projection subtrees (a named key that a wildcard also covers)."""
    if a is None:
        return b
    if b is None or a is b:
        return a
    if a is True or b is True:
        return True
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out.get(k), v)
    return out
