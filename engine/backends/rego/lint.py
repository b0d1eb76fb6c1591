"""Known rego-cpp (regopy) gaps, reported at load with file, line and a suggested rewrite.

rego-cpp rejects or evaluates differently some Rego that OPA accepts. A policy must fail
when it is loaded (and in ``liveguard policy lint``), never on a request, so:

* compile errors from rego-cpp are turned into ``file:line:col: message`` lines, and the
  ones we know (see ``GAPS``) get a concrete rewrite of the offending line;
* when OPA's own evaluator is available (``scripts/fetch_opa_evaluator.sh``), each module is
  also compiled by OPA so a policy that would not run on an OPA fleet is reported too.

The checks read rego-cpp's own error report and the offending source line; they never
evaluate Rego. Differences rego-cpp accepts but evaluates differently (measured with
regopy 1.5.2 against OPA's evaluator) cannot be seen at load; the oracle tests catch them
on generated requests:

* ``[x | some x in obj]`` over an *object* yields values in insertion order in rego-cpp and
  in key order in OPA: iterate arrays (or use sets) when order matters;
* comparing ``null`` with a number is undefined in rego-cpp and ``true``/``false`` in OPA
  (OPA orders values across types): the engine drops null fields from ``input``;
* a comprehension that uses an outer variable (a function argument, or a variable bound in
  the rule body) as a key or in its head, e.g. ``f(k) := sum([x.s[k] | some x in xs])``,
  returns the previous call's result or iterates all keys in rego-cpp 1.5.2: compute
  per-key values at the top level instead,
  ``shifts := {k: sum([x.s[k] | some x in xs]) | some k in keys}``;
* ``regoInputFloat`` keeps 6 decimal places (1e-7 becomes 0): the engine rounds every
  number in ``input`` to 6 places for all backends (``engine.backends.rego.input.INPUT_DECIMALS``);
* rego-cpp still accepts Rego v0 rule bodies without ``if``; OPA 1.x does not (reported
  by the OPA compile check below when the evaluator is available).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# rego-cpp's error sequence: ``(error <n>:<file>|<offset>|<length> (errormsg <n>:<message>)``.
_ERROR = re.compile(r"\(error \d+:(?P<file>[^|]*)\|(?P<offset>\d+)\|(?P<length>\d+)\s*")
_MESSAGE = re.compile(r"\(errormsg \d+:(?P<message>[^)\n]*)\)")
# ``some k, v in xs`` (either name may be ``_``) inside a comprehension.
_SOME_KV_IN = re.compile(
    r"some\s+(?P<k>[A-Za-z_]\w*)\s*,\s*(?P<v>[A-Za-z_]\w*)\s+in\s+(?P<coll>[^;|\]\}\n]+?)\s*(?=[;\]\}\n]|$)"
)


@dataclass(frozen=True, slots=True)
class LintIssue:
    file: str
    line: int
    col: int
    message: str
    suggestion: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.message}"
        return f"{text}; suggested rewrite: {self.suggestion}" if self.suggestion else text


def line_col(source: str, offset: int) -> tuple[int, int]:
    before = source[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def _line_at(source: str, line: int) -> str:
    lines = source.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _rewrite_some_kv(text: str) -> str:
    """``some k, v in obj`` → ``some k; v := obj[k]`` (the form rego-cpp accepts)."""

    def sub(m: re.Match[str]) -> str:
        k, v, coll = m["k"], m["v"], m["coll"].strip()
        if k == "_":
            k = "k"  # the key is needed to index the collection
        if v == "_":
            return f"some {k}; {coll}[{k}]"
        return f"some {k}; {v} := {coll}[{k}]"

    return _SOME_KV_IN.sub(sub, text, count=1).strip()


#: message (as rego-cpp words it) → how to suggest a rewrite for the offending line.
GAPS: dict[str, Callable[[str], str]] = {
    "Invalid collection": lambda line: (
        f"`{_rewrite_some_kv(line)}` (rego-cpp cannot iterate key and value with "
        "`some k, v in …` inside a comprehension; bind the key and index instead)"
    ),
}


def regopy_errors(error_text: str, sources: Mapping[str, str]) -> list[LintIssue]:
    """rego-cpp's error sequence as issues, with rewrites for the gaps we know."""
    issues: list[LintIssue] = []
    starts = list(_ERROR.finditer(error_text))
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(error_text)
        msg = _MESSAGE.search(error_text, m.end(), end)
        message = msg["message"].strip() if msg else "rego-cpp rejected this module"
        file = m["file"]
        source = sources.get(file, "")
        line, col = line_col(source, int(m["offset"])) if source else (1, 1)
        hint = GAPS.get(message)
        suggestion = hint(_line_at(source, line)) if hint else ""
        issue = LintIssue(file, line, col, f"rego-cpp: {message}", suggestion)
        if issue not in issues:  # rego-cpp may report one location several times
            issues.append(issue)
    if not issues and error_text.strip():
        first = error_text.strip().splitlines()[0]
        issues.append(LintIssue(next(iter(sources), "policy.rego"), 1, 1, f"rego-cpp: {first}"))
    return issues


# --- input-sized work ------------------------------------------------------------------------

#: Built-ins whose cost is set by their arguments: sized by the request, the caller chooses
#: how long an evaluation takes.
SIZED_BUILTINS = ("numbers.range_step", "numbers.range")
_ASSIGN = re.compile(r"^\s*(?:default\s+)?(?P<name>[A-Za-z_]\w*)\s*(?::=|=)\s*(?P<expr>.+)$")
_LOCAL = re.compile(r"(?P<name>[A-Za-z_]\w*)\s*:=\s*(?P<expr>[^;\n]+)")


def _args(text: str, start: int) -> str:
    """The argument text of the call whose ``(`` is at ``start`` (to its closing paren)."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return text[start + 1 :]


def _tainted(sources: Mapping[str, str]) -> set[str]:
    """Names whose value derives from ``input`` (rules and local assignments), to a fixpoint."""
    assigns: list[tuple[str, str]] = []
    for src in sources.values():
        for line in src.splitlines():
            for m in (_ASSIGN.match(line), *_LOCAL.finditer(line)):
                if m is not None:
                    assigns.append((m["name"], m["expr"]))
    tainted: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, expr in assigns:
            if name in tainted:
                continue
            words = set(re.findall(r"[A-Za-z_]\w*", expr))
            if "input" in words or words & tainted:
                tainted.add(name)
                changed = True
    return tainted


def input_sized_work(sources: Mapping[str, str]) -> list[LintIssue]:
    """Calls like ``numbers.range(1, input.x * 30)`` whose size the request sets.

    A heuristic over the source text (names assigned from ``input`` are followed through
    other assignments); it complements, never replaces, the evaluation budget. A bound the
    author wrote, ``min([…, N])`` in the arguments, is accepted.
    """
    tainted = _tainted(sources)
    issues: list[LintIssue] = []
    call = re.compile(r"\b(" + "|".join(re.escape(b) for b in SIZED_BUILTINS) + r")\s*\(")
    for file, src in sources.items():
        for m in call.finditer(src):
            args = _args(src, m.end() - 1)
            words = set(re.findall(r"[A-Za-z_]\w*", args))
            if not ("input" in words or words & tainted) or "min" in words:
                continue
            line, col = line_col(src, m.start())
            issues.append(
                LintIssue(
                    file,
                    line,
                    col,
                    f"{m[1]}({args.strip()}) is sized by the request: the caller chooses how "
                    "long evaluation takes",
                    f"bound it, e.g. {m[1]}(1, min([n, 100]))",
                )
            )
    return issues
