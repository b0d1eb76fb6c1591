"""Composition root: settings → policies, store, group-commit writer, metrics, shadow.

The API, the CLI and the benchmarks build a ``Runtime`` from ``Settings``; nothing here is
created at import time and nothing reads the environment except through the settings
handed in. ``start()`` does the I/O (migrations, shadow loading, the writer thread).

Longer than our ~400-line norm on purpose: the decision path (authenticate, select,
evaluate within its budget, minimize, log, record) is read and reviewed as one piece, and
splitting it would scatter the order in which privacy and durability guarantees apply.
Ids and insecure mode, which stand alone, live beside it (``ids``, ``insecure``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime
from time import monotonic, perf_counter_ns
from typing import Any

import structlog
from sqlalchemy import Engine

from engine.core.decide import decide, failed_decision, timeout_message
from engine.core.errors import LiveguardError, PolicyEvalTimeout, PolicyInvalid, RequestInvalid
from engine.core.manifest import PolicyManifest
from engine.core.models import Action, Decision, DecisionRequest, PolicyRef, Reason, ReasonKind
from engine.core.policy import Policy, seen_by
from engine.policy.repository import PolicyRepository
from engine.policy.selection import ensure_applies
from engine.service.ids import new_decision_id
from engine.service.insecure import InsecureModeRefused, insecure_mode_problems
from engine.service.shadow import ShadowRunner, load_candidate, parse_shadow
from engine.settings import Settings
from engine.store import keys as keystore
from engine.store import retention as retention_mod
from engine.store.db import make_engine, prepare_store, sqlite_path
from engine.store.events import (
    CORRELATION,
    RetentionPlan,
    event_row,
    retention_map,
    utcnow,
)
from engine.store.keys import Principal
from engine.store.reviews import review_row
from engine.store.shadowlog import shadow_row
from engine.store.writer import GroupCommitWriter, WriteSet
from engine.store.writer_process import ProcessCommitWriter
from engine.telemetry import Metrics, log_info
from governance.folder import MANIFEST, folder_digest, folder_problems
from governance.folder import validate_file as validate_policy_file
from governance.signoff import check_serving

log = structlog.get_logger("liveguard")

_DEV = Principal(key_id="insecure-dev", role="admin")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.repo = PolicyRepository(settings.policies)
        self.db: Engine = make_engine(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        self.metrics = Metrics()
        path = sqlite_path(self.db)
        #: SQLite: keys read inline (microseconds); PostgreSQL: through the pool in a thread.
        self._keys = keystore.SqliteKeyReader(path) if path is not None else None
        #: PostgreSQL: verified keys cached while a LISTEN for revocations is connected.
        self._pg_keys = (
            keystore.PgKeyCache(settings.database_url)
            if self.db.dialect.name == "postgresql"
            else None
        )
        self.writer: GroupCommitWriter | ProcessCommitWriter
        if settings.writer == "process":
            self.writer = ProcessCommitWriter(
                settings.database_url,
                sqlite_synchronous=settings.sqlite_synchronous,
                batch_max=settings.commit_batch_max,
                observe=self.metrics.observe_commit,
                log_format=settings.log_format,
                log_level=settings.log_level,
            )
        else:
            self.writer = GroupCommitWriter(
                self.db, batch_max=settings.commit_batch_max, observe=self.metrics.observe_commit
            )
        self.shadow: ShadowRunner | None = None
        #: For /health: whether sign-off is enforced, and what is served without one.
        self.signoff: dict[str, Any] = {"signoff": "enforced", "unsigned": []}
        self._scope: dict[tuple[str, str], str] | None = None
        self._retention: dict[str, RetentionPlan] = {}
        self._expected: dict[str, frozenset[str]] = {}
        self._purger: asyncio.Task[None] | None = None
        #: One worker thread per policy evaluated off the event loop (by digest).
        self._lanes: dict[str, ThreadPoolExecutor] = {}
        #: Rego worker processes (``rego_isolation=process``), closed by ``stop``.
        self._workers: list[Any] = []
        #: Policies that did not load at startup: their manifest (None if unreadable), digest.
        self._failed_policies: dict[str, tuple[PolicyManifest | None, str]] = {}
        self.started = False
        #: Bound once (after logging is configured): no lazy-proxy lookup per decision.
        self._log = structlog.get_logger("liveguard").bind()

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, *, run_migrations: bool = True) -> None:
        if run_migrations:
            prepare_store(self.db)
        if self._pg_keys is not None:
            self._pg_keys.start()
        if self.settings.insecure_dev:
            problems = insecure_mode_problems(self.settings, keystore.count_keys(self.db))
            if problems:
                raise InsecureModeRefused(
                    "refusing to start with LIVEGUARD_INSECURE_DEV (no authentication)",
                    problems=problems,
                )
            log.warning(
                "auth.disabled",
                reason="INSECURE DEV MODE: no authentication, every caller is admin; "
                "loopback only, no keys exist",
                host=self.settings.host,
            )
        self._load_policies()
        self._check_signoffs()
        if self.settings.shadow:
            spec = parse_shadow(self.settings.shadow)
            self.shadow = ShadowRunner(spec, load_candidate(spec, self.repo))
            # A Rego candidate runs in the decision's path: bound it like a live policy.
            self._isolate(self.shadow.candidate)
            for worker in self._workers:
                worker.wait_ready(60.0)
            log.info(
                "shadow.enabled", candidate=spec.label, version=self.shadow.candidate.ref.version
            )
        self.writer.start()
        self.started = True

    def stop(self) -> None:
        if self._pg_keys is not None:
            self._pg_keys.stop()
        for lane in self._lanes.values():
            lane.shutdown(wait=False, cancel_futures=True)
        self._lanes.clear()
        for worker in self._workers:
            worker.close()
        self._workers.clear()
        self.writer.stop()
        self.db.dispose()
        self.started = False

    def start_purger(self, clock: Callable[[], datetime] = utcnow) -> None:
        """The periodic retention purge (inside ``serve``'s event loop)."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.settings.purge_interval_s)
                try:
                    report = await asyncio.to_thread(retention_mod.purge, self.db, clock())
                    log.info("store.purged", **asdict(report))
                except Exception as exc:  # keep serving; the next round retries
                    log.error("store.purge_failed", error=type(exc).__name__, detail=str(exc)[:300])

        self._purger = asyncio.get_running_loop().create_task(loop())

    def stop_purger(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            self._purger = None

    # --- auth ----------------------------------------------------------------------------

    @property
    def insecure(self) -> bool:
        return self.settings.insecure_dev

    async def authenticate(self, key: str | None) -> Principal | None:
        if self.insecure:
            return _DEV
        if not key:
            return None
        # No cache: a revocation must hold from the next request on, on every replica.
        if self._keys is not None:
            with contextlib.suppress(sqlite3.Error):  # busy: ask through the pool instead
                return self._keys.resolve(key)
        cache = self._pg_keys
        if cache is not None:
            hit = cache.get(key)
            if hit is not None:
                return hit
        who = await asyncio.to_thread(keystore.resolve_key, self.db, key)
        if who is not None and cache is not None:
            cache.put(key, who)
        return who

    # --- policies ------------------------------------------------------------------------

    def _check_signoffs(self) -> None:
        """Serve only versions the governance board signed off (``governance sign-off``),
        unless started with the explicit override, which is logged and shown on /health."""
        live = [
            (pid, self.repo.get(pid).digest)
            for pid in self.repo.ids()
            if pid not in self._failed_policies  # those decide with fail_mode only
        ]
        check = check_serving(self.repo.root, live, allow_unsigned=self.settings.allow_unsigned)
        if not check.allowed:
            for worker in self._workers:
                worker.close()
            raise SignOffMissing(
                "refusing to serve policy versions without a board sign-off "
                "(sign them off with 'liveguard governance sign-off', or start with "
                "--allow-unsigned / LIVEGUARD_ALLOW_UNSIGNED=true to override, logged)",
                problems=check.problems(),
            )
        self.signoff = check.health()
        if check.unsigned:
            log.warning(
                "signoff.override",
                reason="serving policy versions without a board sign-off (--allow-unsigned)",
                unsigned=self.signoff["unsigned"],
            )

    def _load_policies(self) -> None:
        """Every policy is loaded (parsed, compiled) here, before serving: never on the
        event loop by a request. One that does not load does not stop the service: its
        decisions get its manifest's fail_mode (``_failed_load``), and it is logged now."""
        failed = self.repo.preload()
        for pid, exc in failed.items():
            folder = self.repo.root / pid
            problems: list[str] = []
            manifest = validate_policy_file(PolicyManifest, folder / MANIFEST, problems)
            digest = "sha256:unavailable" if folder_problems(folder) else folder_digest(folder)
            self._failed_policies[pid] = (manifest, digest)
            log.error(
                "policy.load_failed",
                policy=pid,
                fail_mode=manifest.fail_mode.value if manifest else None,
                problems=exc.problems[:10],
            )
        for pid in self.repo.ids():
            if pid in failed:
                continue
            policy = self.repo.get(pid)
            self._isolate(policy)
            declared = policy.manifest.eval_budget_ms
            if declared is not None and declared > self.settings.eval_budget_max_ms:
                log.warning(
                    "policy.budget_capped",
                    policy=pid,
                    declared_ms=declared,
                    capped_ms=self.settings.eval_budget_max_ms,
                )
        for worker in self._workers:
            if not worker.wait_ready(60.0):
                log.error("policy.worker_not_ready", policy=worker.label)
        # Selection by applies_to reads every manifest: once, here (a broken one is
        # reported per request by the repository, as before).
        with contextlib.suppress(PolicyInvalid):
            self.repo.manifests()

    def _isolate(self, policy: Policy) -> None:
        """A Rego policy evaluates in its own worker process, killed past its budget plus
        ``eval_kill_after_ms`` (``rego_isolation=process``, the default)."""
        isolate = getattr(policy.evaluator, "isolate", None)
        if isolate is None or self.settings.rego_isolation != "process":
            return
        timeout_s = (self.budget_ms(policy) + self.settings.eval_wait_slack_ms) / 1000
        kill_after_s = timeout_s + self.settings.eval_kill_after_ms / 1000
        self._workers.append(isolate(timeout_s=timeout_s, kill_after_s=kill_after_s))

    def budget_ms(self, policy: Policy) -> float:
        """The policy's evaluation budget: its manifest's, else the default; capped."""
        declared = policy.manifest.eval_budget_ms or self.settings.eval_budget_ms
        return min(declared, self.settings.eval_budget_max_ms)

    async def _evaluate(self, request: DecisionRequest, policy: Policy, now: datetime) -> Decision:
        """Decide within the policy's budget, off the event loop when the backend may block.

        YAML policies evaluate in microseconds (their cost is bounded by the parse bounds):
        inline, with the budget checked afterwards. Backends that may run long or block
        (Rego, whose evaluation in rego-cpp cannot be interrupted; a remote OPA) run in the
        policy's own worker thread: regopy calls rego-cpp through ctypes, which releases the
        GIL, so the loop keeps serving /health and other policies meanwhile. A decision
        that gets no answer within the budget (plus ``eval_wait_slack_ms`` for the thread
        to pick it up) is the policy's fail_mode with policy_eval_timeout; an evaluation
        still queued behind a slow one when its time is up is not started at all.
        """
        budget = self.budget_ms(policy)
        decision_id = new_decision_id()
        if not getattr(policy.evaluator, "offload", False):
            return decide(request, policy, now=now, decision_id=decision_id, budget_ms=budget)
        lane = self._lanes.get(policy.digest)
        if lane is None:
            lane = self._lanes[policy.digest] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"eval-{policy.id}"
            )
        # An evaluator with its own timeout (remote OPA) is waited for that long instead.
        own = getattr(policy.evaluator, "timeout_ms", None)
        wait_ms = (own or budget) + self.settings.eval_wait_slack_ms
        wait_s = wait_ms / 1000
        deadline = monotonic() + wait_s

        def job() -> Decision:
            if monotonic() > deadline:
                return failed_decision(
                    request,
                    policy,
                    PolicyEvalTimeout(timeout_message(None, budget)),
                    decision_id=decision_id,
                    now=now,
                )
            # The wait below bounds this evaluation's wall time; the CPU check here, at the
            # same bound, still holds when an engine keeps the GIL while it evaluates (then
            # the loop cannot time the wait out until it is done: regorus, measured).
            return decide(request, policy, now=now, decision_id=decision_id, budget_ms=wait_ms)

        future = asyncio.get_running_loop().run_in_executor(lane, job)
        try:
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            return failed_decision(
                request,
                policy,
                PolicyEvalTimeout(timeout_message(None, budget)),
                decision_id=decision_id,
                now=now,
            )

    def select(self, request: DecisionRequest) -> str:
        """The id of the policy that decides ``request``."""
        if request.policy:
            if "@" in request.policy:
                raise RequestInvalid(
                    f"policy: {request.policy!r}: the service decides with live policies only; "
                    "compare other versions with shadow mode or a simulation"
                )
            return request.policy
        if self._scope is None:
            scope: dict[tuple[str, str], list[str]] = {}
            for pid, m in self.repo.manifests().items():
                for ch in m.applies_to.channels:
                    for kind in m.applies_to.kinds:
                        scope.setdefault((ch, kind), []).append(pid)
            self._scope = {k: v[0] for k, v in scope.items() if len(v) == 1}
        s = request.session
        pid = self._scope.get((s.channel, s.kind)) or self._scope.get((s.channel, "*"))
        # Unknown or ambiguous scopes: let the repository say why, in its words.
        return pid or self.repo.match(s.channel, s.kind)

    def _retention_for(self, policy: Policy) -> RetentionPlan:
        got = self._retention.get(policy.digest)
        if got is None:
            df = policy.dataflow
            days = retention_map({f: df.retention_days_for(f) for f in df.retained_fields()})
            got = self._retention[policy.digest] = RetentionPlan.from_days(days)
        return got

    def _expected_signals(self, policy: Policy) -> frozenset[str]:
        got = self._expected.get(policy.digest)
        if got is None:
            got = self._expected[policy.digest] = frozenset(policy.fusion.weights)
        return got

    # --- deciding ------------------------------------------------------------------------

    async def decide(
        self,
        request: DecisionRequest,
        *,
        policy_id: str | None = None,
        request_id: str | None = None,
        received_ns: int | None = None,
    ) -> tuple[Decision, str]:
        """Decide, log durably (and shadow), then answer: nothing unlogged is returned.

        Returns the decision and its wire JSON (serialized once: logged and sent as is).
        """
        received_ns = received_ns or perf_counter_ns()
        now = utcnow()
        named = bool(policy_id or request.policy)
        pid = policy_id or self.select(request)
        policy: Policy | None
        try:
            policy = self.repo.get(pid)
        except PolicyInvalid as exc:
            policy = None
            decision = self._failed_load(request, pid, exc, now, named=named)
            retention = RetentionPlan.from_days({CORRELATION: self.settings.fail_retention_days})
        if policy is not None:
            if named:
                ensure_applies(policy.manifest, request)
            decision = await self._evaluate(request, policy, now)
            retention = self._retention_for(policy)
            self._count_dropped(request, policy)
            # From here on only what the policy could see travels: the log, the review
            # item, the shadow candidate and the metrics never get a signal the policy was
            # not allowed (no consent to media analysis, or undeclared in its manifest).
            request = seen_by(policy, request)
        else:
            request = request.model_copy(update={"signals": ()})
        structlog.contextvars.bind_contextvars(decision_id=decision.decision_id)
        wire = decision.model_dump_json()
        row = event_row(
            request,
            decision,
            retention,
            time=now,
            request_id=request_id,
            service_us=(perf_counter_ns() - received_ns) // 1000,
            result_json=wire,
        )
        ws = WriteSet(event=row, review=review_row(decision, row))
        if self.shadow is not None and self.shadow.applies(decision):
            ws.shadow = self._shadow(request, decision, now, row["expires_at"])
        await self.writer.write(ws)
        seconds = (perf_counter_ns() - received_ns) / 1e9
        # The caller's answer goes first. Decisions committed together resume one after
        # another in one pass of the loop; recording each one's metrics and log line in a
        # later pass lets every answer of the group leave before any of that work is done.
        # The callback keeps this request's context (its request and decision ids).
        asyncio.get_running_loop().call_soon(self._record, request, decision, policy, seconds)
        return decision, wire

    def _record(
        self, request: DecisionRequest, decision: Decision, policy: Policy | None, seconds: float
    ) -> None:
        """A committed decision's metrics and its log line."""
        self.metrics.observe_decision(
            request, decision, seconds, self._expected_signals(policy) if policy else frozenset()
        )
        log_info(
            self._log,
            "decision",
            policy=decision.policy.id,
            version=decision.policy.version,
            action=decision.action.value,
            risk=decision.risk,
            degraded=decision.degraded,
            error=decision.error,
            latency_ms=round(seconds * 1000, 3),
        )

    def _shadow(
        self, request: DecisionRequest, live: Decision, now: datetime, expires: datetime
    ) -> dict[str, Any] | None:
        assert self.shadow is not None
        try:
            shadow = self.shadow.evaluate(request, live, now)
            self.metrics.shadow_agreement.labels(
                live.policy.id, str(shadow.action == live.action)
            ).inc()
            return shadow_row(live, shadow, self.shadow.spec.label, now, expires)
        except Exception as exc:  # the candidate must never hurt the live path
            self.metrics.shadow_errors.labels(live.policy.id).inc()
            log.error("shadow.failed", error=type(exc).__name__, detail=str(exc)[:300])
            return None

    def _count_dropped(self, request: DecisionRequest, policy: Policy) -> None:
        if not request.signals:
            return
        consented = request.session.consent.media_analysis
        no_consent = undeclared = 0
        for s in request.signals:
            if not consented and s.media_derived:
                no_consent += 1
            elif not policy.signal_allowed(s.name):
                undeclared += 1
        self.metrics.observe_dropped(policy.id, "no_consent", no_consent)
        self.metrics.observe_dropped(policy.id, "undeclared", undeclared)

    def _failed_load(
        self,
        request: DecisionRequest,
        pid: str,
        exc: PolicyInvalid,
        now: datetime,
        *,
        named: bool = False,
    ) -> Decision:
        """A policy that does not load still fails safe, by its manifest's fail_mode."""
        # Read at startup (``_load_policies``): nothing is parsed again per request.
        manifest, digest = self._failed_policies.get(pid, (None, ""))
        if manifest is None:
            raise exc  # no fail_mode to honour: the caller gets the error itself
        if named:
            ensure_applies(manifest, request)
        log.error("policy.load_failed", policy=pid, problems=exc.problems[:10])
        action: Action = manifest.fail_mode
        reason = Reason(
            code="policy_invalid",
            message="The policy could not be loaded; its fail-safe action applies.",
            kind=ReasonKind.error,
        )
        return Decision(
            decision_id=new_decision_id(),
            session_id=request.session.id,
            action=action,
            risk=1.0,
            thresholds={},
            reasons=(reason,),
            summary=f"{action.value.replace('_', ' ').capitalize()}: the policy could not be "
            "evaluated, so its fail-safe action applies.",
            policy=PolicyRef(
                id=manifest.id,
                version=manifest.version,
                digest=digest,
                engine=manifest.engine,
            ),
            degraded=True,
            error=f"{exc.code}: {exc.message}",
            decided_at=now.isoformat(),
        )


class SignOffMissing(LiveguardError):
    """A policy version the service would serve has no valid board sign-off."""

    code = "signoff_missing"
    exit_code = 2
