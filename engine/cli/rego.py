"""CLI for the Rego feature: ``bundle build|verify``, ``policy history``, extra lint passes,
and rule coverage after ``policy test``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.groups import policy_app
from engine.cli.support import DEFAULT_POLICIES, EXIT_FAILURE, PoliciesOption, cli_errors
from engine.policy.repository import PolicyRepository

bundle_app = typer.Typer(help="OPA bundles of liveguard policies.", no_args_is_help=True)


@bundle_app.command("build")
@cli_errors
def bundle_build(
    ids: Annotated[list[str] | None, typer.Argument(help="Policy ids; default: all.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("bundle.tar.gz"),
    signing_key: Annotated[
        Path | None,
        typer.Option(help="HS256 secret file, or a PEM private key (RSA → RS256, P-256 → ES256)."),
    ] = None,
    policies: PoliciesOption = DEFAULT_POLICIES,
) -> None:
    """Write an OPA bundle (.manifest, .rego, data.json; optionally .signatures.json)."""
    from engine.backends.bundle import write_bundle

    repo = PolicyRepository(policies)
    # YAML policies are exported as data plus the generic evaluator, so every policy bundles.
    chosen = ids or list(repo.manifests())
    key = signing_key.read_bytes() if signing_key else None
    files = write_bundle(output, [repo.get(pid) for pid in chosen], key)
    typer.echo(f"{output}: {len(files)} files, {len(chosen)} policies{', signed' if key else ''}")


@bundle_app.command("verify")
@cli_errors
def bundle_verify(
    path: Annotated[Path, typer.Argument(help="A bundle .tar.gz")],
    verification_key: Annotated[
        Path | None,
        typer.Option(help="The HS256 secret, or the PEM public key matching the signing key."),
    ] = None,
) -> None:
    """Check a bundle's manifest roots and, with a key, its signature."""
    from engine.backends.bundle import verify_bundle

    problems = verify_bundle(path, verification_key.read_bytes() if verification_key else None)
    for line in problems:
        typer.echo(line)
    typer.echo(f"{path}: {'ok' if not problems else f'{len(problems)} problems'}")
    if problems:
        raise typer.Exit(EXIT_FAILURE)


@policy_app.command("history")
@cli_errors
def policy_history(
    policy_id: Annotated[str, typer.Argument(help="Policy id")],
    policies: PoliciesOption = DEFAULT_POLICIES,
) -> None:
    """The versions of a policy in Git: semver, digest, commit, date (newest first)."""
    from engine.policy.git import history

    for v in history(policies, policy_id):
        typer.echo(f"{v.version:<10} {v.digest}  {v.commit[:12]}  {v.date}")


def rule_coverage(policy: object) -> list[str]:
    """Which rules the cases made fire (from the ids the Rego decision reports in `fired`)."""
    report = getattr(getattr(policy, "evaluator", None), "coverage_report", None)
    if report is None:
        return []
    fired, never = report()
    total = len(fired) + len(never)
    lines = [
        f"rules fired: {len(fired)}/{total or len(fired)}"
        + (f" ({', '.join(fired)})" if fired else "")
    ]
    if never:
        lines.append(f"never fired: {', '.join(never)}")
    return lines


def opa_compile_problems(repo: PolicyRepository, ids: list[str]) -> list[str]:
    """With OPA's evaluator present: Rego that rego-cpp accepts but OPA would reject."""
    from engine.backends.opa.local import opa_engine_class
    from governance.files import FileRefused, read_text

    cls = opa_engine_class()
    problems: list[str] = []
    if cls is None:
        return problems
    for pid in ids:
        # Only folders that hold Rego; manifest problems are the main lint pass's to report.
        for rego in sorted((repo.root / pid).glob("*.rego")):
            engine = cls()
            try:
                source = read_text(rego)  # size cap, no symlinks (loading reports refusals)
            except FileRefused:
                continue
            try:
                engine.add_policy(str(rego), source)
            except Exception as exc:  # OpaError: OPA's compile error text names file:line
                problems.append(f"{rego}: OPA rejects this module: {exc}")
    return problems


def input_sized_problems(repo: PolicyRepository, ids: list[str]) -> list[str]:
    """Rego whose cost the request sets (``numbers.range(1, input.x)``); see engine.backends.rego.lint."""
    from engine.backends.rego.lint import input_sized_work
    from governance.files import FileRefused, read_text

    problems: list[str] = []
    for pid in ids:
        sources: dict[str, str] = {}
        for rego in sorted((repo.root / pid).glob("*.rego")):
            try:
                sources[rego.name] = read_text(rego)  # bounded; loading reports refusals
            except FileRefused:
                continue
        problems += [f"{repo.root / pid}/{issue}" for issue in input_sized_work(sources)]
    return problems


def rego_engine_paths(repo: PolicyRepository, ids: list[str]) -> list[str]:
    """Which embedded engine (and regorus path) each Rego policy took at load, and why.

    Information, not problems: printed here, nothing returned (a policy off the VM is
    slower, never less safe)."""
    for pid in ids:
        try:
            policy = repo.get(pid)
        except Exception:  # PolicyInvalid: the main lint pass reports it
            continue
        evaluator = policy.evaluator
        engine = getattr(evaluator, "engine", None)
        if engine == "regorus":
            compiled = evaluator.compiled  # type: ignore[attr-defined]
            if compiled.path == "vm":
                typer.echo(f"{pid}: regorus VM (nothing in it can fail on some values only)")
                continue
            typer.echo(f"{pid}: regorus Engine, not the VM (it would not fail safe there):")
            for why in compiled.why:
                typer.echo(f"  {policy.path}/{why}")
        elif engine == "regopy":
            typer.echo(f"{pid}: regopy (rego-cpp)")
    return []


def register(app: typer.Typer) -> None:
    from engine.cli import main as cli
    from engine.policy.git import lint_versions

    app.add_typer(bundle_app, name="bundle")
    for extra, hooks in (
        (lint_versions, cli.LINTERS),
        (opa_compile_problems, cli.LINTERS),
        (input_sized_problems, cli.LINTERS),
        (rego_engine_paths, cli.LINTERS),
        (rule_coverage, getattr(cli, "TEST_REPORTS", [])),
    ):
        if extra not in hooks:
            hooks.append(extra)
