"""The regorus Rego backend: Microsoft's regorus (Rust), on its bytecode VM or its tree-walker.

Two paths, chosen per policy at load (``CompiledRegorus.path``):

* ``vm``: ``regorus.Program`` compiled once, run by ``regorus.Rvm`` (3–5× faster than OPA's
  evaluator). The VM is not strict: where OPA raises it makes the failing expression
  undefined. A policy takes this path only when ``engine.backends.rego.vm_check`` finds
  nothing in it that can fail at run time on some values, ``vm_types`` no builtin argument
  whose type the request can change (then an undefined decision, which
  is already ``policy_eval_error``, is the only way the VM can fail) *and* the VM compiles it.
* ``engine``: ``regorus.Engine``, OPA-like error semantics (division by zero, builtin
  errors, conflicts raise), about 0.7× OPA's time. Everything else.

Every failure — an exception, an undefined decision, a Rust panic — is a
``PolicyEvalError``: the decision is the policy's fail_mode, never a silent allow.

regorus's objects are bound to the thread that made them (a call from another thread
panics), so each thread builds its own from what is shared: the VM program as
``Program.serialize_binary()`` bytes, the Engine from the module sources. Numbers are f64.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import regorus
from pydantic_core import from_json, to_json

from engine.backends.rego.embedded import CompileCache, RegoEvaluatorBase, _plan, mount_data
from engine.backends.rego.plan import Path as InputPath
from engine.backends.rego.plan import PlanShapeError, Projector, input_reads
from engine.backends.rego.vm_check import VmIssue, vm_issues
from engine.backends.rego.vm_types import type_issues
from engine.backends.rego.worker import describe
from engine.core.errors import PolicyEvalError
from engine.core.manifest import PolicyManifest

RegoPath = Literal["vm", "engine"]
#: What the VM returns for an undefined result (and, in its lax mode, for an error).
UNDEFINED = '"<undefined>"'
#: regorus's VM error when an evaluation runs past its fixed instruction budget.
INSTRUCTION_LIMIT = "exceeded maximum instruction limit"
#: Exceptions that are the interpreter's own business, not an evaluation failure.
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)


@dataclass
class CompiledRegorus:
    """A policy prepared for regorus, plus what the engine learned about it at load."""

    package: str
    entrypoint: str  # slash form (liveguard/<package>/decision), as CompiledRego has it
    modules: dict[str, str]
    data: dict[str, Any]
    reads: frozenset[InputPath]
    projector: Projector
    path: RegoPath
    #: Why the policy is not on the VM path (empty on the VM path).
    why: tuple[str, ...] = ()
    program: bytes | None = None  # the VM program, serialized (regorus objects are thread-bound)
    rule_ids: tuple[str, ...] = ()
    local: threading.local = field(default_factory=threading.local)

    @property
    def query_path(self) -> str:
        """The dotted document path (``liveguard.<package>.decision``), as OPA names it."""
        return self.entrypoint.replace("/", ".")

    @property
    def rule(self) -> str:
        return "data." + self.query_path

    @property
    def data_json(self) -> str:
        return json.dumps(mount_data(self.package, self.data))


def _engine_for(modules: dict[str, str], data: dict[str, Any], package: str) -> Any:
    engine = regorus.Engine()
    # print() would write to fd 1: the service's log stream, or a worker's answer pipe.
    engine.set_gather_prints(True)
    for name, src in modules.items():
        engine.add_policy(name, src)
    engine.add_data(mount_data(package, data))
    return engine


def compile_regorus(
    modules: dict[str, str],
    data: dict[str, Any],
    package: str,
    entrypoint: str,
    *,
    where: Path,
    problems: list[str],
    force_path: RegoPath | None = None,
) -> CompiledRegorus | None:
    """Parse with regorus, choose the path (VM when provably fail-safe), learn the reads.

    ``force_path`` skips the choice (tests and benchmarks measuring one path; the service
    never forces the VM past ``vm_check``)."""
    rule = "data." + entrypoint.replace("/", ".")
    try:
        engine = _engine_for(modules, data, package)
    except Exception as exc:  # a parse error: regorus names file:line:col
        problems.append(f"{where}/{describe(exc)}")
        return None
    ast_json = engine.get_ast_as_json()
    why = [str(i) for i in vm_issues(ast_json)]
    why += [str(i) for i in type_issues(ast_json, mount_data(package, data))]
    program: bytes | None = None
    try:
        compiled = regorus.Program.compile_from_modules(
            json.dumps(mount_data(package, data)), list(modules.items()), [rule]
        )
        program = bytes(compiled.serialize_binary())
    except Exception as exc:
        text = describe(exc)
        if "not a valid rule path" in text:
            problems.append(
                f"{where / 'policy.rego'}: no rule {rule.removeprefix('data.')!r}; expected "
                f"package liveguard.{package} with a rule 'decision'"
            )
            return None
        if "Unknown function" in text:
            # Neither path has it (the Engine would only find out when a request reaches it).
            problems.append(
                f"{where}/{text} (regorus lacks this builtin; set rego_engine: regopy in "
                "manifest.yaml)"
            )
            return None
        why.append(f"{text} (the VM does not compile this)")
    path: RegoPath = "vm" if not why and program is not None else "engine"
    if force_path == "engine" or (force_path == "vm" and program is not None):
        path = force_path
    plan = _plan(modules, mount_data(package, data), entrypoint)
    try:
        reads = frozenset(input_reads(plan)) if plan is not None else frozenset({()})
    except PlanShapeError:
        reads = frozenset({()})  # unknown plan shape: send the whole (minimized) input
    return CompiledRegorus(
        package=package,
        entrypoint=entrypoint,
        modules=modules,
        data=data,
        reads=reads,
        projector=Projector(reads),
        path=path,
        why=tuple(why),
        program=program if path == "vm" else None,
        rule_ids=_rule_ids(engine, package),
    )


def _rule_ids(engine: Any, package: str) -> tuple[str, ...]:
    """The policy's optional ``rule_ids`` document: every id ``fired`` may report."""
    try:
        value = engine.eval_rule(f"data.liveguard.{package}.rule_ids")
    except Exception:
        return ()
    return tuple(sorted(str(v) for v in value)) if isinstance(value, list) else ()


_COMPILED: CompileCache[CompiledRegorus] = CompileCache(lambda *a, **k: compile_regorus(*a, **k))


def compiled_regorus_for(
    folder: Path, manifest: PolicyManifest, problems: list[str]
) -> CompiledRegorus | None:
    """The prepared policy for this folder's content, prepared only on a new digest."""
    return _COMPILED.get(folder, manifest, problems)


# --- evaluation -----------------------------------------------------------------------------


def _thread_vm(c: CompiledRegorus) -> Any:
    vm = getattr(c.local, "vm", None)
    if vm is None:
        program, _ = regorus.Program.deserialize_binary(c.program)
        vm = regorus.Rvm()
        vm.load_program(program)
        vm.set_data_json(c.data_json)  # required: without data the VM answers undefined
        c.local.vm = vm
    return vm


def _thread_engine(c: CompiledRegorus) -> Any:
    engine = getattr(c.local, "engine", None)
    if engine is None:
        engine = c.local.engine = _engine_for(c.modules, c.data, c.package)
    return engine


def evaluate_text(c: CompiledRegorus, doc_json: str) -> str:
    """The decision as JSON text for one input (JSON text), on this thread's objects."""
    try:
        text = None
        if c.path == "vm":
            vm = _thread_vm(c)
            vm.set_input_json(doc_json)
            try:
                text = str(vm.execute())
            except RuntimeError as exc:
                if INSTRUCTION_LIMIT not in str(exc):
                    raise
                # The VM stops after 25,000 instructions (not settable from Python): a long
                # evaluation goes on in the Engine (stricter, slower), bounded like any other
                # by the service's budget and worker kill.
        if text is None:
            engine = _thread_engine(c)
            engine.set_input_json(doc_json)
            try:
                text = str(engine.eval_rule_as_json(c.rule))
            finally:
                engine.take_prints()  # gathered, never kept: bounded memory
    except _PASS_THROUGH:
        raise
    except BaseException as exc:  # RuntimeError, or a Rust panic (BaseException-derived)
        raise PolicyEvalError(f"regorus: {describe(exc)}") from None
    if text.strip() == UNDEFINED:
        raise PolicyEvalError(f"{c.rule} is undefined for this input")
    return text


class RegorusEvaluator(RegoEvaluatorBase):
    """Evaluates a policy with regorus (VM or Engine path); records which rules fired."""

    engine = "regorus"
    compiled: CompiledRegorus

    @property
    def path(self) -> RegoPath:
        return self.compiled.path

    def _worker_options(self) -> dict[str, Any]:
        return {"engine": "regorus", "vm": self.compiled.path == "vm"}

    def evaluate_document(self, doc: dict[str, Any]) -> Any:
        """Run the entrypoint on one input document; the raw decision value."""
        if self.worker is not None:
            text = self._worker_text(doc)
        else:
            # pydantic-core's JSON (Rust) both ways: ~4x faster than the json module on these
            # documents, a tenth of the VM path's time per decision; same values.
            text = evaluate_text(self.compiled, to_json(doc).decode())
        try:
            return from_json(text)
        except ValueError:
            raise PolicyEvalError(f"regorus returned a malformed result: {text[:200]}") from None


__all__ = [
    "CompiledRegorus",
    "RegorusEvaluator",
    "VmIssue",
    "compile_regorus",
    "compiled_regorus_for",
    "evaluate_text",
]
