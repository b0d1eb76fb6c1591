"""The embedded Rego backend: policies in Rego, evaluated in-process by regopy (rego-cpp).

A Rego policy folder holds, next to ``manifest.yaml`` (``engine: rego``), ``dataflow.yaml``,
``pia.yaml`` and ``tests.yaml``:

* ``policy.rego`` (and any other ``*.rego``): package ``liveguard.<id with - as _>``, rule
  ``decision`` returning ``{action, reasons, thresholds?, obligations?, context?, fired?}``;
* ``data.json`` (optional): mounted at ``data.liveguard_data.<package>``. Not under the
  policy's own package: a policy that binds its whole config (``cfg := data.liveguard_data.x``)
  would otherwise depend on its own rules, which OPA rejects as recursion;
* ``fusion.yaml``: the fusion config (prior, weights, cap, min_evidence). Fusion is the
  engine's job, done before the policy runs, so it lives beside the policy rather than in
  data.json; the policy sees its result as ``input.fused``.

``input`` is the manifest-minimized request (null fields dropped) plus ``input.fused``
(risk, log_odds, evidence_mass, signal_count, degraded, contributions); non-integer numbers
are given to 6 decimal places (``INPUT_DECIMALS``: what rego-cpp's input API keeps). The bundle is
compiled once per folder digest; per request the evaluator only converts the input, sets
it and runs the compiled entrypoint. The input is further pruned to the paths the compiled
plan can read (``engine.backends.rego.plan``), which keeps conversion cheap and tells governance
which fields the policy reads.

Slightly over ~400 lines on purpose: it holds the regopy evaluator and
``RegoEvaluatorBase``, which the regorus evaluator also derives from; the base's input
pruning and outcome check are regopy's own code path, so they stay beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from regopy import Input, Interpreter, LogLevel
from regopy import rego_shared as _rs

from engine.backends.rego import teardown
from engine.backends.rego.document import DATA_FILE, REGO_FILE, to_outcome
from engine.backends.rego.input import fields_read, request_input
from engine.backends.rego.lint import regopy_errors
from engine.backends.rego.plan import Path as InputPath
from engine.backends.rego.plan import PlanShapeError, Projector, input_reads
from engine.backends.rego.worker import RegoWorker
from engine.core.errors import PolicyEvalError
from engine.core.fusion import FusionConfig
from engine.core.manifest import PolicyManifest
from engine.core.models import Fused
from engine.core.policy import Outcome, PolicyView
from governance.files import FileRefused, load_json, read_text
from governance.folder import folder_digest

teardown.install()  # rego-cpp handles alive at interpreter exit are freed quietly

_lib = _rs.rego
_S, _I, _F, _B, _N = (
    _lib.regoInputString,
    _lib.regoInputInt,
    _lib.regoInputFloat,
    _lib.regoInputBoolean,
    _lib.regoInputNull,
)
_ITEM, _OBJ, _ARR = _lib.regoInputObjectItem, _lib.regoInputObject, _lib.regoInputArray
_ENCODED: dict[str, bytes] = {}


def _push(p: int, v: Any) -> None:
    # regopy's own Input walks values with isinstance checks and a fresh ctypes buffer per
    # string; this calls the C API directly with cached key bytes (about twice as fast).
    t = type(v)
    if t is str:
        b = _ENCODED.get(v)
        _S(p, b if b is not None else v.encode())
    elif t is bool:
        _B(p, v)
    elif t is float:
        _F(p, v)
    elif t is int:
        if -(2**63) <= v < 2**63:
            _I(p, v)
        else:
            _F(p, float(v))
    elif t is dict:
        for k, x in v.items():
            kb = _ENCODED.get(k)
            if kb is None:
                kb = k.encode()
                if len(_ENCODED) < 4096:  # keys are a small fixed vocabulary; stay bounded
                    _ENCODED[k] = kb
            _S(p, kb)
            _push(p, x)
            _ITEM(p)
        _OBJ(p, len(v))
    elif t is list or t is tuple:
        for x in v:
            _push(p, x)
        _ARR(p, len(v))
    elif v is None:
        _N(p)
    else:
        _push(p, json.loads(json.dumps(v)))


class FastInput(Input):
    """A regopy ``Input`` built straight through the C API (freed by regopy's destructor)."""

    def __init__(self, value: Any) -> None:
        self._impl = _lib.regoNewInput()
        _push(self._impl, value)


# --- compilation (once per digest) ----------------------------------------------------------


@dataclass
class CompiledRego:
    """A compiled bundle plus what the engine learned about it at load."""

    package: str
    entrypoint: str  # rego-cpp form: liveguard/<package>/decision
    modules: dict[str, str]
    data: dict[str, Any]
    bundle: Any
    reads: frozenset[InputPath]
    projector: Projector
    rule_ids: tuple[str, ...] = ()
    lock: threading.Lock = field(default_factory=threading.Lock)
    interpreter: Any = None

    @property
    def query_path(self) -> str:
        """The dotted document path (``liveguard.<package>.decision``), as OPA names it."""
        return self.entrypoint.replace("/", ".")


T = TypeVar("T")


class CompileCache(Generic[T]):
    """Compiled policies by (folder digest, entrypoint): compiled once per content, the
    least recently used dropped past ``size`` (a repository's history is unbounded)."""

    def __init__(self, compile: Callable[..., T | None], size: int = 64) -> None:
        self._compile = compile
        self._size = size
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: Path, manifest: PolicyManifest, problems: list[str]) -> T | None:
        key = f"{folder_digest(folder)}:{entrypoint_for(manifest)}"
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        modules = read_sources(folder, problems)
        data = read_data(folder, problems)
        if problems:
            return None
        compiled = self._compile(
            modules,
            data,
            manifest.package,
            entrypoint_for(manifest),
            where=folder,
            problems=problems,
        )
        if compiled is not None:
            with self._lock:
                self._items[key] = compiled
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
        return compiled


def entrypoint_for(manifest: PolicyManifest) -> str:
    ep = manifest.entrypoint or f"data.liveguard.{manifest.package}.decision"
    return ep.removeprefix("data.").replace(".", "/")


def read_sources(folder: Path, problems: list[str]) -> dict[str, str]:
    modules: dict[str, str] = {}
    for path in sorted(folder.glob("*.rego")):
        try:
            modules[path.name] = read_text(path)  # size cap, no symlinks
        except FileRefused as exc:
            problems.append(str(exc))
    if REGO_FILE not in modules and not (folder / REGO_FILE).exists():
        problems.append(f"{folder / REGO_FILE}: file is missing")
    return modules


def read_data(folder: Path, problems: list[str]) -> dict[str, Any]:
    path = folder / DATA_FILE
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        data = load_json(path)  # size cap, depth and node bounds, no symlinks
    except FileRefused as exc:
        problems.append(str(exc))
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a JSON object at the top level")
        return {}
    return data


DATA_ROOT = "liveguard_data"


def mount_data(package: str, data: dict[str, Any]) -> dict[str, Any]:
    """Where a policy folder's data.json lives in the data document (and in a bundle)."""
    return {DATA_ROOT: {package: data}} if data else {}


def _new_interpreter() -> Any:
    rego = Interpreter()
    rego.log_level = LogLevel.NONE  # errors come back as exceptions; no stdout noise
    # A builtin error (division by zero, bad type) must fail the decision, not leave an
    # error term inside the result document.
    rego.strict_built_in_errors = True
    return rego


def compile_rego(
    modules: dict[str, str],
    data: dict[str, Any],
    package: str,
    entrypoint: str,
    *,
    where: Path,
    problems: list[str],
) -> CompiledRego | None:
    """Compile with rego-cpp; known interpreter gaps become ``file:line`` problems."""
    builder = _new_interpreter()
    try:
        for name, src in modules.items():
            builder.add_module(name, src)
        builder.add_data(mount_data(package, data))
        bundle = builder.build(None, [entrypoint])
    except _rs.RegoError as exc:
        for issue in regopy_errors(str(exc), modules):
            problems.append(f"{where / issue.file}:{str(issue).split(':', 1)[1]}")
        return None
    if not bundle.ok():
        problems.append(f"{where / REGO_FILE}: rego-cpp could not build the bundle")
        return None
    plan = _plan(modules, mount_data(package, data), entrypoint)
    func = "g0.data." + entrypoint.replace("/", ".")
    if plan is not None and func not in {f["name"] for f in plan["funcs"]["funcs"] or []}:
        problems.append(
            f"{where / REGO_FILE}: no rule {entrypoint.replace('/', '.')!r}; expected package "
            f"liveguard.{package} with a rule 'decision'"
        )
        return None
    try:
        reads = frozenset(input_reads(plan)) if plan is not None else frozenset({()})
    except PlanShapeError:
        reads = frozenset({()})  # unknown plan shape: send the whole (minimized) input
    compiled = CompiledRego(
        package=package,
        entrypoint=entrypoint,
        modules=modules,
        data=data,
        bundle=bundle,
        reads=reads,
        projector=Projector(reads),
    )
    compiled.interpreter = _new_interpreter()
    compiled.rule_ids = _rule_ids(compiled, builder)
    return compiled


_PLAN_SCRIPT = """
import json, sys, tempfile
import regopy  # first: rego-cpp's JSON bundle writer crashes when numpy was loaded before it
from regopy import Interpreter, LogLevel
job = json.load(sys.stdin)
rego = Interpreter()
rego.log_level = LogLevel.NONE
for name, src in job["modules"].items():
    rego.add_module(name, src)
rego.add_data(job["data"])
bundle = rego.build(None, [job["entrypoint"]])
with tempfile.TemporaryDirectory() as tmp:
    rego.save_bundle(tmp + "/bundle", bundle)
    sys.stdout.write(open(tmp + "/bundle/plan.json", encoding="utf-8").read())
"""


def _plan(modules: dict[str, str], data: dict[str, Any], entrypoint: str) -> dict[str, Any] | None:
    """rego-cpp's execution plan (OPA IR) for the entrypoint, or None if unavailable.

    Written by rego-cpp's bundle writer in a child interpreter: in this process numpy may
    already be loaded, and then that writer corrupts the heap (measured with regopy 1.5.2
    and numpy 2.x; the binary writer and evaluation are unaffected). Once per digest.
    """
    job = json.dumps({"modules": modules, "data": data, "entrypoint": entrypoint})
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PLAN_SCRIPT],
            input=job,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _rule_ids(compiled: CompiledRego, builder: Any) -> tuple[str, ...]:
    """The policy's optional ``rule_ids`` document: every id ``fired`` may report."""
    out = builder.query(f"x = data.liveguard.{compiled.package}.rule_ids")
    try:
        value = json.loads(str(out))["bindings"]["x"] if out.ok() else []
    except (ValueError, KeyError, TypeError):
        return ()
    return tuple(sorted(str(v) for v in value)) if isinstance(value, list) else ()


def compiled_for(
    folder: Path, manifest: PolicyManifest, problems: list[str]
) -> CompiledRego | None:
    """The compiled bundle for this folder's content, compiled only on a new digest."""
    return _COMPILED.get(folder, manifest, problems)


_COMPILED: CompileCache[CompiledRego] = CompileCache(lambda *a, **k: compile_rego(*a, **k))


# --- evaluation -----------------------------------------------------------------------------


class RegoEvaluatorBase(ABC):
    """What every embedded Rego evaluator shares: the pruned input, the outcome check,
    rule coverage, the fields read, and moving evaluation into a killable worker process.
    Subclasses say how one document is evaluated in-process (``evaluate_document``) and
    which engine the worker runs (``_worker_options``)."""

    engine = "rego"
    #: Rego engines cannot be interrupted and may run long: the service evaluates off its loop.
    offload = True

    def __init__(
        self,
        compiled: Any,
        fusion: FusionConfig,
        signal_phrases: dict[str, str] | None = None,
    ) -> None:
        self.compiled = compiled
        self.fusion = fusion
        self.signal_phrases = dict(signal_phrases or {})
        self.coverage: Counter[str] = Counter()
        #: Set by ``isolate``: evaluations then run in a killable worker process.
        self.worker: RegoWorker | None = None
        self._timeout_s = self._kill_after_s = 0.0

    def input_for(self, view: PolicyView, fused: Fused, degraded: bool) -> dict[str, Any]:
        """The input this policy is given: the request document pruned to what it reads."""
        return self.compiled.projector.apply(request_input(view, fused, degraded))

    def evaluate(self, view: PolicyView, fused: Fused, degraded: bool) -> Outcome:
        raw = self.evaluate_document(self.input_for(view, fused, degraded))
        outcome, fired = to_outcome(raw)
        self.coverage.update(fired)
        return outcome

    @abstractmethod
    def evaluate_document(self, doc: dict[str, Any]) -> Any:
        """Run the entrypoint on one input document; the raw decision value."""

    def _worker_options(self) -> dict[str, Any]:
        return {}

    def isolate(self, *, timeout_s: float, kill_after_s: float) -> RegoWorker:
        """Evaluate from now on in a worker process running this engine, killed past
        ``kill_after_s`` (the service's choice: no Rego engine can be interrupted
        in-process). Started here."""
        c = self.compiled
        worker = RegoWorker(
            c.modules,
            mount_data(c.package, c.data),
            c.entrypoint,
            label=c.query_path,
            **self._worker_options(),
        )
        worker.start()
        self.worker, self._timeout_s, self._kill_after_s = worker, timeout_s, kill_after_s
        return worker

    def _worker_text(self, doc: dict[str, Any]) -> str:
        assert self.worker is not None
        return self.worker.evaluate_text(
            doc, timeout_s=self._timeout_s, kill_after_s=self._kill_after_s
        )

    def fields_read(self) -> set[str]:
        return fields_read(self.compiled.reads, self.fusion)

    def coverage_report(self) -> tuple[list[str], list[str]]:
        """(fired, never fired) rule ids since load, for ``policy test``."""
        fired = sorted(self.coverage)
        never = [r for r in self.compiled.rule_ids if r not in self.coverage]
        return fired, never


class RegoEvaluator(RegoEvaluatorBase):
    """Evaluates a compiled bundle in-process with regopy (rego-cpp)."""

    engine = "regopy"
    compiled: CompiledRego

    def evaluate_document(self, doc: dict[str, Any]) -> Any:
        """Run the compiled entrypoint on one input document; the raw decision value."""
        c = self.compiled
        if self.worker is not None:
            return self._result(self._worker_text(doc))
        value = FastInput(doc)
        with c.lock:
            rego = c.interpreter
            rego.set_input(value)
            out = _rs.rego_bundle_query_entrypoint(rego._impl, c.bundle._impl, c.entrypoint)
            try:
                ok = _rs.rego_output_ok(out)
                text = _rs.rego_output_string(out)
            finally:
                _rs.rego_free_output(out)
        if not ok:
            raise PolicyEvalError(f"rego-cpp: {text.strip()[:300]}")
        return self._result(text)

    def _result(self, text: str) -> Any:
        c = self.compiled
        if text == "undefined":
            raise PolicyEvalError(f"data.{c.query_path} is undefined for this input")
        try:
            result = json.loads(text)
            return result["expressions"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise PolicyEvalError(f"rego-cpp returned a malformed result: {text[:200]}") from None
