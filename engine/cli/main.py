"""The ``liveguard`` command line (typer). Exit codes: 0 ok, 1 decision/test failure, 2 bad input."""

from __future__ import annotations

import importlib
from datetime import date
from importlib.metadata import entry_points
from typing import Annotated

import typer

from engine.cli.groups import app, governance_app, policy_app
from engine.cli.support import (
    DEFAULT_POLICIES,
    EXIT_FAILURE,
    PoliciesOption,
    cli_errors,
    fail,
    parse_request,
    read_json,
)
from engine.core.decide import decide
from engine.core.errors import PolicyInvalid, PolicyNotApplicable
from engine.core.models import Decision
from engine.core.policy import Policy
from engine.policy.repository import PolicyRepository
from engine.policy.selection import ensure_applies
from engine.policy.testsuite import TESTS_FILE, load_suite, run_suite
from governance.checks import check_policy_dir
from governance.signoff import unsigned


def render(decision: Decision) -> str:
    """The readable form an agent or engineer reads in a terminal."""
    p = decision.policy
    lines = [
        f"{decision.action.value.upper()}  risk {decision.risk:.2f}"
        f"{'  (degraded evidence)' if decision.degraded else ''}"
        f"  [{p.id} {p.version} {p.digest[:19]}…]",
        decision.summary,
    ]
    if decision.reasons:
        lines.append("reasons:")
        lines += [f"  - {r.code}: {r.message}" for r in decision.reasons]
    if decision.obligations:
        lines.append("obligations:")
        for ob in decision.obligations:
            details = ob.model_dump(exclude={"kind"})
            text = ", ".join(
                f"{k}={','.join(map(str, v)) if isinstance(v, list | tuple) else v}"
                for k, v in details.items()
            )
            lines.append(f"  - {ob.kind}: {text}")
    if decision.thresholds:
        th = "  ".join(f"{a.value} {v:.2f}" for a, v in decision.thresholds.items())
        lines.append(f"thresholds: {th}")
    if decision.error:
        lines.append(f"error: {decision.error}")
    return "\n".join(lines)


@app.command("decide")
@cli_errors
def decide_cmd(
    input: Annotated[
        str, typer.Option("--input", "-i", help="Request JSON file, or '-' for stdin.")
    ] = "-",
    policy: Annotated[
        str | None,
        typer.Option("--policy", "-p", help="Policy id; default: the request's, or by applies_to."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the full Decision as JSON.")
    ] = False,
    any_scope: Annotated[
        bool,
        typer.Option(
            "--any-scope",
            help="Let a named policy decide a session its applies_to does not cover "
            "(trying a policy out; said on stderr). The service never allows this.",
        ),
    ] = False,
    policies: PoliciesOption = DEFAULT_POLICIES,
) -> None:
    """Decide one request and print the decision."""
    request = parse_request(read_json(input), input)
    repo = PolicyRepository(policies)
    named = policy or request.policy
    chosen = repo.get(named) if named else repo.select(request)
    if named:
        try:
            ensure_applies(chosen.manifest, request)
        except PolicyNotApplicable as exc:
            if not any_scope:
                raise
            typer.echo(f"warning: scope override (--any-scope): {exc.message}", err=True)
    # The policy's evaluation budget holds here as in the service (fail_mode past it).
    decision = decide(request, chosen, budget_ms=chosen.eval_budget_ms)
    typer.echo(decision.model_dump_json(indent=2) if as_json else render(decision))
    if decision.error:
        raise typer.Exit(EXIT_FAILURE)


@policy_app.command("list")
@cli_errors
def policy_list(policies: PoliciesOption = DEFAULT_POLICIES) -> None:
    """List the policies with version, engine, scope and digest."""
    repo = PolicyRepository(policies)
    for pid in repo.ids():
        p = repo.get(pid)
        m = p.manifest
        scope = f"{'/'.join(m.applies_to.channels)}: {', '.join(m.applies_to.kinds)}"
        typer.echo(
            f"{pid:<28} {m.version:<8} {m.engine:<5} fail={m.fail_mode.value:<8} {scope}  {p.digest[:19]}…"
        )


@policy_app.command("test")
@cli_errors
def policy_test(
    ids: Annotated[list[str] | None, typer.Argument(help="Policy ids; default: all.")] = None,
    policies: PoliciesOption = DEFAULT_POLICIES,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run each policy's tests.yaml cases; exit 1 when any case fails."""
    repo = PolicyRepository(policies)
    total = failed = 0
    for pid in ids or repo.ids():
        policy = repo.get(pid)
        results = run_suite(policy, load_suite(policy.path))
        bad = [r for r in results if not r.passed]
        total += len(results)
        failed += len(bad)
        typer.echo(f"{pid}: {len(results) - len(bad)}/{len(results)} cases passed")
        for r in results:
            if verbose or not r.passed:
                typer.echo(f"  {'ok  ' if r.passed else 'FAIL'} {r.name}")
            for f in r.failures:
                typer.echo(f"       {f}")
        for report in TEST_REPORTS:
            for line in report(policy):
                typer.echo(f"  {line}")
    typer.echo(f"{total - failed} passed, {failed} failed")
    if failed or total == 0:
        raise typer.Exit(EXIT_FAILURE)


@policy_app.command("lint")
@cli_errors
def policy_lint(
    ids: Annotated[list[str] | None, typer.Argument(help="Policy ids; default: all.")] = None,
    policies: PoliciesOption = DEFAULT_POLICIES,
) -> None:
    """Load every policy and its tests, report every problem, and find overlapping scopes."""
    repo = PolicyRepository(policies)
    problems: list[str] = []
    chosen = ids or repo.ids()
    loaded = []
    for pid in chosen:
        try:
            policy = repo.get(pid)
            loaded.append(policy)
            if not (policy.path / TESTS_FILE).is_file():
                problems.append(
                    f"{policy.path / TESTS_FILE}: file is missing (policy tests are required)"
                )
            else:
                load_suite(policy.path)
        except PolicyInvalid as exc:
            problems += exc.problems or [exc.message]
    for extra in LINTERS:
        problems += extra(repo, chosen)
    problems += _overlaps(loaded)
    for line in problems:
        typer.echo(line)
    typer.echo(f"{len(chosen)} policies linted, {len(problems)} problems")
    if problems:
        raise typer.Exit(EXIT_FAILURE)


def _overlaps(policies: list[Policy]) -> list[str]:
    """Two policies claiming the same channel and session kind make selection ambiguous."""
    owners: dict[tuple[str, str], list[str]] = {}
    for p in policies:
        scope = p.manifest.applies_to
        for ch in scope.channels:
            for kind in scope.kinds:
                owners.setdefault((ch, kind), []).append(p.id)
    return [
        f"applies_to: {ch}/{kind} is claimed by {', '.join(ids)}; requests must then name a policy"
        for (ch, kind), ids in sorted(owners.items())
        if len(ids) > 1 and kind != "*"
    ]


#: Extra lint passes other modules add (e.g. Rego interpreter gaps, version bumps).
LINTERS: list = []
#: Extra per-policy lines after ``policy test`` (e.g. which Rego rules fired), ``(policy) -> list[str]``.
TEST_REPORTS: list = []


@governance_app.command("check")
@cli_errors
def governance_check(
    ids: Annotated[list[str] | None, typer.Argument(help="Policy ids; default: all.")] = None,
    policies: PoliciesOption = DEFAULT_POLICIES,
    today: Annotated[
        str | None, typer.Option(help="Check as of this date (YYYY-MM-DD); default: today.")
    ] = None,
    require_signoff: Annotated[
        bool,
        typer.Option(
            "--require-signoff",
            help="Count live versions without a board sign-off as problems (default: "
            "reported as warnings; serve refuses them either way).",
        ),
    ] = False,
) -> None:
    """Check every policy's PIA and data-flow manifest; one line per problem, exit 1 if any.

    Live versions without a valid board sign-off are reported too (``warning:`` lines, or
    problems with ``--require-signoff``)."""
    try:
        as_of = date.fromisoformat(today) if today else date.today()
    except ValueError:
        raise fail(f"--today: expected a date like 2026-11-25, got {today!r}") from None
    repo = PolicyRepository(policies)
    count = warnings = 0
    chosen = ids or repo.ids()
    for pid in chosen:
        lines: list[str] = []
        try:
            policy = repo.get(pid)
            found = check_policy_dir(
                policy.path,
                policy_version=policy.manifest.version,
                fields_read=policy.fields_read(),
                today=as_of,
            )
            lines = [str(p) for p in found]
            for status in unsigned(repo.root, [(pid, policy.digest)]):
                for problem in status.problems:
                    if require_signoff:
                        lines.append(problem)
                    else:
                        typer.echo(f"warning: {problem}")
                        warnings += 1
        except PolicyInvalid as exc:
            lines = exc.problems or [exc.message]
        count += len(lines)
        for line in lines:
            typer.echo(line)
    typer.echo(
        f"{len(chosen)} policies checked, {count} problems"
        + (f", {warnings} without a board sign-off (warnings)" if warnings else "")
    )
    if count:
        raise typer.Exit(EXIT_FAILURE)


#: Feature modules that add commands; each exposes ``register(app)``.
FEATURE_MODULES = ("engine.cli.detectors", "engine.cli.rego", "engine.cli.service")


#: Command groups from other packages (``register(app)`` callables): the layers above the
#: engine (simulations) add their commands here without the engine importing them.
CLI_ENTRY_POINTS = "liveguard.cli"


def _register_features() -> None:
    for name in FEATURE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that feature is not part of this build
            raise
        module.register(app)
    for ep in sorted(entry_points(group=CLI_ENTRY_POINTS), key=lambda e: e.name):
        register = ep.load()
        if not callable(register):
            raise TypeError(
                f"CLI plugin {ep.name!r} ({ep.value}): expected a register(app) callable"
            )
        register(app)


_register_features()


def main() -> None:
    app()
