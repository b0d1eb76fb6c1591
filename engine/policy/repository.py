"""Policy folders: manifest, digest, loading (every problem at once) and selection.

A policy folder holds ``manifest.yaml``, the logic (``policy.yaml`` or ``policy.rego``),
``dataflow.yaml`` (what the policy may read), ``pia.yaml`` and ``tests.yaml``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.conditions import REQUEST_FIELDS, ConditionError
from engine.errors import PolicyAmbiguous, PolicyInvalid, PolicyNotFound
from engine.fusion import FusionConfig
from engine.models import Action, DecisionRequest, Fused, PolicyRef
from engine.policy_yaml import CompiledYamlPolicy, Outcome, YamlPolicySpec
from governance.dataflow import DataFlowManifest
from governance.errors import format_validation_error
from governance.files import LIMITS as FILE_LIMITS
from governance.files import FileRefused, load_yaml
from governance.minimize import is_declared
from signals import Signal

POLICY_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.\-]+)?$")
MANIFEST = "manifest.yaml"
#: The most a manifest may declare for ``eval_budget_ms``; the service may lower it further.
MAX_EVAL_BUDGET_MS = 1000.0
#: A policy's evaluation budget when its manifest declares none (the service's default is
#: ``LIVEGUARD_EVAL_BUDGET_MS``).
DEFAULT_EVAL_BUDGET_MS = 5.0


class AppliesTo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    channels: list[Literal["conference", "support_call"]] = Field(min_length=1)
    kinds: list[str] = Field(min_length=1)

    def matches(self, channel: str, kind: str) -> bool:
        return channel in self.channels and (kind in self.kinds or "*" in self.kinds)


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    by: str
    role: Literal["security", "privacy", "legal", "board", "product"]
    date: date


class PolicyManifest(BaseModel):
    """``manifest.yaml``: identity, scope and safety settings of one policy version."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    version: str
    owner: str = Field(min_length=3)
    description: str = ""
    applies_to: AppliesTo
    engine: Literal["yaml", "rego"] = "yaml"
    entrypoint: str | None = Field(
        default=None, description="Rego rule to query, e.g. data.liveguard.x.decision"
    )
    fail_mode: Action = Field(
        description="Action when evaluation fails: fail safe, never silently allow."
    )
    approvals: list[Approval] = []
    eval_budget_ms: float | None = Field(
        default=None,
        gt=0,
        le=MAX_EVAL_BUDGET_MS,
        description="Time one evaluation may take; past it the decision is fail_mode with "
        "policy_eval_timeout. Default: the service's LIVEGUARD_EVAL_BUDGET_MS.",
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not POLICY_ID.match(v):
            raise ValueError("expected a lowercase id with dashes, e.g. 'support-password-reset'")
        return v

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not SEMVER.match(v):
            raise ValueError("expected a semantic version like 1.2.0")
        return v

    @field_validator("fail_mode")
    @classmethod
    def _fail_safe(cls, v: Action) -> Action:
        if v == Action.log:
            raise ValueError(
                "expected warn, step_up, review or block: failing must never allow silently"
            )
        return v

    @property
    def package(self) -> str:
        """The Rego package suffix: the id with '-' written '_'."""
        return self.id.replace("-", "_")


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


class YamlEvaluator:
    def __init__(self, spec: YamlPolicySpec) -> None:
        self.spec = spec
        self.compiled = CompiledYamlPolicy(spec)

    def evaluate(self, view: PolicyView, fused: Fused, degraded: bool) -> Outcome:
        return self.compiled.evaluate(view.ctx, fused, degraded)

    def fields_read(self) -> set[str]:
        return self.spec.fields_read()


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
            ok = self._signal_allowed[name] = is_declared(f"signals.{name}", self._allowed)
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


# --- loading -----------------------------------------------------------------------------


#: Most files (and folders) one policy folder may hold.
MAX_FOLDER_ENTRIES = 256


def folder_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, in path order.

    Only what the folder itself holds counts: a symlink contributes its link text (what Git
    stores), never the bytes it points at (a folder with one does not load anyway).
    """
    h = hashlib.sha256()
    for path in sorted(_policy_files(folder)):
        rel = path.relative_to(folder).as_posix()
        h.update(rel.encode())
        h.update(b"\0")
        if path.is_symlink():
            h.update(b"symlink:" + os.fsencode(os.readlink(path)))
        else:
            h.update(path.read_bytes())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def _entries(folder: Path) -> Iterable[Path]:
    """Every entry below ``folder`` (hidden ones and caches aside), never following links."""
    todo = [folder]
    while todo:
        current = todo.pop()
        with os.scandir(current) as it:
            for entry in it:
                if entry.name.startswith(".") or entry.name == "__pycache__":
                    continue
                path = Path(entry.path)
                yield path
                if entry.is_dir(follow_symlinks=False):
                    todo.append(path)


def _policy_files(folder: Path) -> Iterable[Path]:
    for path in _entries(folder):
        if path.is_symlink() or path.is_file():
            yield path


def folder_problems(folder: Path) -> list[str]:
    """What makes a folder unfit before any file is parsed: symlinks, oversized files.

    Symlinks are refused outright (not resolved and checked): a policy version must be the
    bytes the repository holds, so review, the digest and ``git archive`` all see one thing.
    """
    problems: list[str] = []
    if folder.is_symlink():
        problems.append(
            f"{folder}: is a symbolic link (to {os.readlink(folder)}); a policy folder must "
            "be a real folder in the policy repository"
        )
        return problems
    for count, path in enumerate(_entries(folder), start=1):
        if count > MAX_FOLDER_ENTRIES:
            problems.append(f"{folder}: holds more than {MAX_FOLDER_ENTRIES} files and folders")
            break
        if path.is_symlink():
            problems.append(
                f"{path}: is a symbolic link (to {os.readlink(path)}); policy folders may "
                "not contain symlinks: put the file itself in the folder"
            )
        elif path.is_file():
            size = path.stat().st_size
            if size > FILE_LIMITS.max_bytes:
                problems.append(
                    f"{path}: is {size:,} bytes; policy files may be at most "
                    f"{FILE_LIMITS.max_bytes:,} bytes (1 MiB)"
                )
    return problems


def read_yaml(path: Path, problems: list[str]) -> Any:
    """Parse one YAML file within the parse bounds (``governance.files``); a problem
    (``file: line N: …``, a symlink, a file past the size cap, an alias bomb) is appended."""
    try:
        data = load_yaml(path)
    except FileRefused as exc:
        problems.append(str(exc))
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a mapping at the top level")
        return None
    return data


def validate_file(model: type[BaseModel], path: Path, problems: list[str]) -> Any:
    data = read_yaml(path, problems)
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(format_validation_error(str(path), exc))
        return None


#: Backends beyond YAML register here (e.g. Rego); each builds (fusion, evaluator) or
#: appends problems.
BackendLoader = Callable[[Path, PolicyManifest, list[str]], tuple[FusionConfig, Evaluator] | None]
BACKENDS: dict[str, BackendLoader] = {}


def _load_yaml_backend(
    folder: Path, manifest: PolicyManifest, problems: list[str]
) -> tuple[FusionConfig, Evaluator] | None:
    path = folder / "policy.yaml"
    spec = validate_file(YamlPolicySpec, path, problems)
    if spec is None:
        return None
    try:
        return spec.fusion, YamlEvaluator(spec)
    except ConditionError as exc:
        problems.extend(f"{path}: {p}" for p in exc.problems)
        return None


BACKENDS["yaml"] = _load_yaml_backend


def load_policy_folder(folder: Path, *, git_ref: str | None = None) -> Policy:
    """Load one policy folder, reporting every problem at once."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise PolicyNotFound(f"{folder}: no policy here (missing {MANIFEST})")
    problems = folder_problems(folder)
    if problems:
        # Nothing is parsed from a folder with links out of it or files past the cap.
        raise PolicyInvalid(f"policy {folder.name!r} does not load", problems=problems)
    manifest = validate_file(PolicyManifest, folder / MANIFEST, problems)
    dataflow = validate_file(DataFlowManifest, folder / "dataflow.yaml", problems)
    loaded = None
    if manifest is not None:
        if manifest.id != folder.name and git_ref is None:
            problems.append(
                f"{folder / MANIFEST}: id: expected the folder name {folder.name!r}, got {manifest.id!r}"
            )
        if manifest.engine == "rego" and "rego" not in BACKENDS:
            # Imported on first use: the Rego backend registers itself in BACKENDS.
            import engine.policy_rego  # noqa: F401
        backend = BACKENDS.get(manifest.engine)
        if backend is None:
            problems.append(
                f"{folder / MANIFEST}: engine: the {manifest.engine!r} backend is not available"
            )
        else:
            loaded = backend(folder, manifest, problems)
        if dataflow is not None and dataflow.policy != manifest.id:
            problems.append(
                f"{folder / 'dataflow.yaml'}: policy: expected {manifest.id!r}, got {dataflow.policy!r}"
            )
    elif (folder / "policy.yaml").is_file():
        # The manifest is broken, but the logic can still be checked: report it all at once.
        _load_yaml_backend(folder, None, problems)  # type: ignore[arg-type]
    if problems or manifest is None or dataflow is None or loaded is None:
        raise PolicyInvalid(f"policy {folder.name!r} does not load", problems=problems)
    fusion, evaluator = loaded
    spec = evaluator.spec if isinstance(evaluator, YamlEvaluator) else None
    return Policy(
        manifest=manifest,
        digest=folder_digest(folder),
        path=folder,
        fusion=fusion,
        dataflow=dataflow,
        evaluator=evaluator,
        spec=spec,
        git_ref=git_ref,
    )


class PolicyRepository:
    """The policies of one directory, loaded lazily (or all at once by ``preload``) and
    cached by id. A policy that did not load is cached too: it is not parsed again per call."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._cache: dict[str, Policy] = {}
        self._failed: dict[str, PolicyInvalid] = {}
        self._manifests: dict[str, PolicyManifest] | None = None
        self._ids: list[str] | None = None

    def ids(self) -> list[str]:
        if self._ids is not None:
            return list(self._ids)
        if not self.root.is_dir():
            raise PolicyNotFound(f"{self.root}: policy directory does not exist")
        return sorted(p.name for p in self.root.iterdir() if (p / MANIFEST).is_file())

    def preload(self) -> dict[str, PolicyInvalid]:
        """Load every policy now (the service does this at startup, never on a request);
        afterwards the set of policies is fixed and ``get`` does no I/O. Returns the ones
        that did not load, by id."""
        ids = self.ids()
        for pid in ids:
            with contextlib.suppress(PolicyInvalid):
                self.get(pid)
        self._ids = ids
        return dict(self._failed)

    def get(self, policy_id: str) -> Policy:
        cached = self._cache.get(policy_id)
        if cached is not None:
            return cached
        failed = self._failed.get(policy_id)
        if failed is not None:
            raise failed
        if "@" in policy_id:
            from engine.policy_git import load_policy_at_ref  # optional: Git history

            policy = load_policy_at_ref(self.root, *policy_id.split("@", 1))
        else:
            known = self._ids if self._ids is not None else None
            if (
                not POLICY_ID.match(policy_id)
                or (known is not None and policy_id not in known)
                or (known is None and not (self.root / policy_id / MANIFEST).is_file())
            ):
                listed = ", ".join(self.ids()) or "none"
                raise PolicyNotFound(f"unknown policy {policy_id!r}; known policies: {listed}")
            try:
                policy = load_policy_folder(self.root / policy_id)
            except PolicyInvalid as exc:
                self._failed[policy_id] = exc
                raise
        self._cache[policy_id] = policy
        return policy

    def all(self) -> list[Policy]:
        return [self.get(i) for i in self.ids()]

    def manifests(self) -> dict[str, PolicyManifest]:
        """Every policy's manifest, read once: selection by applies_to runs per request."""
        if self._manifests is not None:
            return self._manifests
        out: dict[str, PolicyManifest] = {}
        for pid in self.ids():
            problems: list[str] = []
            m = validate_file(PolicyManifest, self.root / pid / MANIFEST, problems)
            if m is None:
                raise PolicyInvalid(f"policy {pid!r} does not load", problems=problems)
            out[pid] = m
        self._manifests = out
        return out

    def select(self, request: DecisionRequest) -> Policy:
        """The policy named by the request, or the one whose applies_to matches it."""
        if request.policy:
            return self.get(request.policy)
        return self.get(self.match(request.session.channel, request.session.kind))

    def match(self, channel: str, kind: str) -> str:
        hits = [pid for pid, m in self.manifests().items() if m.applies_to.matches(channel, kind)]
        if not hits:
            raise PolicyNotFound(
                f"no policy applies to channel {channel!r} and session kind {kind!r}; "
                "name one with the request's 'policy' field"
            )
        if len(hits) > 1:
            raise PolicyAmbiguous(
                f"several policies apply to channel {channel!r} and session kind {kind!r}: "
                f"{', '.join(hits)}; name one with the request's 'policy' field"
            )
        return hits[0]


def load_policy(policy: str | Path, policies_dir: Path | str | None = None) -> Policy:
    """Load a policy by id (from ``policies_dir``, default ``./policies``) or by folder path."""
    as_path = Path(policy)
    if isinstance(policy, Path) or (as_path.is_dir() and (as_path / MANIFEST).is_file()):
        return load_policy_folder(as_path)
    return PolicyRepository(Path(policies_dir or "policies")).get(str(policy))
