"""``liveguard simulate …`` and the board's ``governance sign-off`` / ``keygen`` / ``sign-offs``.

Registered through the ``liveguard.cli`` entry-point group (the engine never imports
simulations): ``register(app)`` adds the ``simulate`` group and the board's commands to the
existing ``governance`` group. Heavy modules (detectors, pyarrow) load inside the commands
so ``liveguard --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from engine import PolicyRepository
from engine.cli.groups import governance_app
from engine.cli.support import (
    DEFAULT_POLICIES,
    EXIT_FAILURE,
    PoliciesOption,
    cli_errors,
    fail,
)

P = ParamSpec("P")
R = TypeVar("R")

simulate_app = typer.Typer(
    help="Scenario corpora, detector response profiles and backtests of policy versions.",
    no_args_is_help=True,
)


def sim_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Our simulation errors (bad scenario, profile, corpus, sweep) → one line each, exit 2."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from governance.signoff import SignOffError
        from simulations.corpus import CorpusError
        from simulations.diff import SweepError
        from simulations.profile import ProfileError
        from simulations.scenarios import ScenarioError

        try:
            return fn(*args, **kwargs)
        except ScenarioError as exc:
            raise fail(exc.problems) from None
        except (CorpusError, ProfileError, SweepError, SignOffError) as exc:
            raise fail(str(exc).splitlines()) from None

    return cli_errors(wrapper)


def _csv(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@simulate_app.command("profile")
@sim_errors
def profile_cmd(
    data: Annotated[
        list[Path], typer.Option("--data", help="Labelled set: DIR/manifest.csv (repeatable).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Profile Parquet file.")],
    conditions: Annotated[
        list[str] | None,
        typer.Option(help="Call conditions (comma-separated or repeated)."),
    ] = None,
    limit: Annotated[
        int, typer.Option(help="Clips to run (spread over systems and labels).")
    ] = 200,
    max_seconds: Annotated[float, typer.Option(help="Each clip is cut to this length.")] = 8.0,
    jobs: Annotated[int, typer.Option(help="Worker processes (each loads the detectors).")] = 1,
    seed: Annotated[int, typer.Option(help="Clip selection and degradation seed.")] = 0,
) -> None:
    """Run the real detectors over labelled audio under call conditions → per clip × condition
    each detector's final signal (score, confidence)."""
    from simulations.profile import run_profile

    kwargs: dict[str, Any] = {}
    if conditions:
        kwargs["conditions"] = _csv(conditions)
    table = run_profile(
        data, output, limit=limit, max_seconds=max_seconds, jobs=jobs, seed=seed, **kwargs
    )
    typer.echo(f"wrote {output}: {table.num_rows} clip × condition rows")


@simulate_app.command("generate")
@sim_errors
def generate_cmd(
    sessions: Annotated[int, typer.Option(help="Sessions to generate.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Corpus Parquet file.")],
    seed: Annotated[int, typer.Option(help="Same seed, same file.")] = 0,
    scenarios: Annotated[
        list[str] | None, typer.Option(help="Scenario ids (comma-separated); default: all.")
    ] = None,
    scenarios_dir: Annotated[
        Path | None, typer.Option(help="Scenario catalog folder; default: the bundled one.")
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option(help="Detector response profile; without one, hand-set fallbacks are used."),
    ] = None,
) -> None:
    """A seeded, reproducible corpus of sessions with ground truth from the scenario catalog."""
    from simulations.corpus import file_digest, generate_corpus, write_corpus
    from simulations.profile import load_profile
    from simulations.scenarios import CATALOG_DIR, load_catalog

    catalog = load_catalog(scenarios_dir or CATALOG_DIR, _csv(scenarios) or None)
    prof = meta = digest = None
    if profile is not None:
        prof, meta = load_profile(profile)
        digest = file_digest(profile)
    table = generate_corpus(
        catalog, sessions, seed, profile=prof, profile_meta=meta, profile_digest=digest
    )
    write_corpus(table, output)
    typer.echo(f"wrote {output}: {sessions:,} sessions over {len(catalog)} scenarios")
    hand = sorted(
        {f"{s.id}: {n}" for s in catalog for n, spec in s.signals.items() if not spec.from_profile}
    )
    if prof is None:
        hand += [
            f"{s.id}: {n} (fallback, no profile)"
            for s in catalog
            for n, spec in s.signals.items()
            if spec.from_profile
        ]
    if hand:
        typer.echo(f"hand-set signal distributions ({len(hand)}):", err=True)
        for line in sorted(hand):
            typer.echo(f"  {line}", err=True)


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:5.1f}%"


def _print_metrics(m: dict[str, Any]) -> None:
    p = m["policy"]
    c = m["corpus"]
    typer.echo(f"{p['id']} {p['version']} {p['digest'][:19]}… ({m['evaluation']['mode']})")
    typer.echo(f"  {c['in_scope']:,} of {c['sessions']:,} sessions in scope")
    if not m["costs_declared"]:
        typer.echo("  expected cost: the policy declares no cost table (costs: in policy.yaml)")
    header = (
        f"  {'scenario':<24}{'n':>8}  {'log':>6}{'warn':>7}{'step':>7}{'review':>7}{'block':>7}"
        f"  {'FPR≥step':>8}{'catch':>8}{'rev/1k':>8}{'raw/1k':>7}{'cost/1k':>14}"
    )
    typer.echo(header)
    for name, g in [("(all)", m["overall"]), *m["scenarios"].items()]:
        mix = g["action_mix"]
        cost = g["expected_cost"]
        typer.echo(
            f"  {name:<24}{g['sessions']:>8,}  "
            + "".join(_pct(mix[a]).rjust(7) for a in ("log", "warn", "step_up", "review", "block"))
            + f"  {_pct(g['false_positive_rate']['step_up_or_harder']):>8}"
            f"{_pct(g['catch_rate_all_attacks']):>8}"
            f"{(g['review_queue']['per_1000_sessions'] or 0):>8.1f}"
            f"{(g['raw_media_escalations_per_1000'] or 0):>7.1f}"
            f"{'n/a' if cost is None else format(cost['per_1000_sessions'], ',.0f'):>14}"
        )
    t = m["decision_time_us"]
    if t["timed"]:
        typer.echo(
            f"  decide() time over {t['timed']:,} sessions: p50 {t['p50']:.0f} µs, "
            f"p95 {t['p95']:.0f} µs, p99 {t['p99']:.0f} µs"
        )
    hand = {k: v for k, v in c["hand_set_signals"].items() if v}
    if hand:
        typer.echo(
            "  hand-set signals (not measured): "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(hand.items()))
        )


def _columns(repo: PolicyRepository, *refs: str | None) -> list[str] | None:
    """Corpus columns the named versions read together (None: every column, e.g. Rego)."""
    from simulations.backtest import policy_columns

    out: set[str] = set()
    for ref in refs:
        if ref is None:
            continue
        cols = policy_columns(repo.get(ref))
        if cols is None:
            return None
        out |= set(cols)
    return sorted(out)


@simulate_app.command("run")
@sim_errors
def run_cmd(
    policy: Annotated[str, typer.Option("--policy", "-p", help="Policy id, or id@git-ref.")],
    corpus: Annotated[Path, typer.Option(help="Corpus Parquet file (simulate generate).")],
    against: Annotated[
        str | None, typer.Option(help="Compare with this version (id@ref): the diff.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    jobs: Annotated[
        int, typer.Option(help="Worker processes (Rego; YAML by row groups when > 1).")
    ] = 1,
    threads: Annotated[
        int,
        typer.Option(help="Threads evaluating a YAML corpus in this process.", min=1, max=32),
    ] = 2,
    sessions_per_hour: Annotated[
        int, typer.Option(help="Traffic level the review load per hour is stated at.", min=1)
    ] = 10_000,
    any_scope: Annotated[
        bool,
        typer.Option("--any-scope", help="Count every session, not only those in applies_to."),
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address: YAML row groups evaluated on the cluster."),
    ] = None,
    policies: PoliciesOption = DEFAULT_POLICIES,
) -> None:
    """Backtest a policy version over a corpus (and diff it against another version)."""
    from simulations.backtest import backtest
    from simulations.corpus import read_corpus
    from simulations.diff import diff_versions

    repo = PolicyRepository(policies)
    table, _ = read_corpus(corpus, columns=_columns(repo, policy, against))
    opts: dict[str, Any] = {
        "corpus_path": corpus,
        "jobs": jobs,
        "threads": threads,
        "sessions_per_hour": sessions_per_hour,
        "any_scope": any_scope,
        "dask": dask,
    }
    ev, m = backtest(repo, policy, table, **opts)
    doc: dict[str, Any] = {"run": m}
    if against:
        ev_old, m_old = backtest(repo, against, table, **opts)
        doc["against"] = m_old
        doc["diff"] = diff_versions(ev, ev_old, table)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    _print_metrics(m)
    if against:
        typer.echo("")
        _print_metrics(doc["against"])
        d = doc["diff"]
        typer.echo("")
        typer.echo(
            f"changed: {d['changed']:,} of {d['sessions']:,} sessions "
            f"({d['harder']:,} harder, {d['softer']:,} softer)"
        )
        for g in d["by_reason"][:10]:
            typer.echo(f"  {g['sessions']:>7,}  {g['change']}")


@simulate_app.command("sweep")
@sim_errors
def sweep_cmd(
    policy: Annotated[str, typer.Option("--policy", "-p", help="Policy id, or id@git-ref.")],
    corpus: Annotated[Path, typer.Option(help="Corpus Parquet file.")],
    parameter: Annotated[
        str, typer.Option(help="thresholds.<action> or adjustments.<id> (its shift).")
    ],
    values: Annotated[str, typer.Option(help="start:stop:step or a comma-separated list.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    policies: PoliciesOption = DEFAULT_POLICIES,
) -> None:
    """Move one threshold or adjustment over a range: false positives vs catch rate and cost."""
    from simulations.corpus import read_corpus
    from simulations.diff import parse_values, sweep

    repo = PolicyRepository(policies)
    table, _ = read_corpus(corpus, columns=_columns(repo, policy))
    result = sweep(repo.get(policy), table, parameter, parse_values(values))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{result['policy']} {parameter} (current {result['current']})")
    for pt in result["points"]:
        mark = " ◀ current" if pt["value"] == result["current"] else ""
        if "invalid" in pt:
            typer.echo(f"  {pt['value']:>8g}  invalid: {pt['invalid']}")
            continue
        cost = pt["cost_per_1000"]
        typer.echo(
            f"  {pt['value']:>8g}  FPR {_pct(pt['false_positive_rate'])}  catch "
            f"{_pct(pt['catch_rate'])}  reviews/1k {pt['review_per_1000']:.1f}  cost/1k "
            f"{'n/a' if cost is None else format(cost, ',.0f')}{mark}"
        )


@simulate_app.command("replay")
@sim_errors
def replay_cmd(
    history: Annotated[Path, typer.Option(help="Decision history (liveguard store export).")],
    policy: Annotated[str, typer.Option("--policy", "-p", help="Candidate: id or id@git-ref.")],
    slower_than_ms: Annotated[
        float, typer.Option(help="Same action but slower by more than this = 'slower'.")
    ] = 1.0,
    any_policy: Annotated[
        bool, typer.Option("--any-policy", help="Replay every decision, not only this policy's.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    policies: PoliciesOption = DEFAULT_POLICIES,
) -> None:
    """Replay past decisions under a candidate version: unchanged, changed, error, slower;
    and outcomes analysis where reviewers resolved the item."""
    from simulations.replay import read_history, replay

    result = replay(
        read_history(history),
        PolicyRepository(policies).get(policy),
        slower_than_us=int(slower_than_ms * 1000),
        any_policy=any_policy,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    c = result["candidate"]
    typer.echo(
        f"{c['id']} {c['version']} {c['digest'][:19]}… over {result['decisions']:,} decisions"
    )
    for kind, n in result["classification"].items():
        typer.echo(f"  {kind:<10}{n:>9,}")
    for label, o in [
        *result["outcomes"]["by_version"].items(),
        ("candidate", result["outcomes"]["candidate"]),
    ]:
        if o["labelled"]:
            typer.echo(
                f"  outcomes {label}: {o['labelled']} reviewed, review precision "
                f"{_pct(o['precision_review'])}, overturn {_pct(o['overturn_rate'])}, "
                f"confirmed attacks let through {o['confirmed_attacks_let_through']}"
            )


#: Files whose text the packet diffs between versions (the decision logic and its scope).
POLICY_FILES = ("manifest.yaml", "policy.yaml", "policy.rego", "data.json", "fusion.yaml")
MAX_DIFF_LINES = 400


def _policy_diff(old_dir: Path, new_dir: Path) -> list[str]:
    import difflib

    out: list[str] = []
    for name in POLICY_FILES:
        a, b = old_dir / name, new_dir / name
        if not a.is_file() and not b.is_file():
            continue
        old = a.read_text(encoding="utf-8").splitlines() if a.is_file() else []
        new = b.read_text(encoding="utf-8").splitlines() if b.is_file() else []
        out += difflib.unified_diff(old, new, f"old/{name}", f"new/{name}", lineterm="", n=2)
    if len(out) > MAX_DIFF_LINES:
        out = [
            *out[:MAX_DIFF_LINES],
            f"… {len(out) - MAX_DIFF_LINES} more lines (git diff shows all)",
        ]
    return out or ["(the decision logic did not change)"]


@governance_app.command("report")
@sim_errors
def report_cmd(
    policy: Annotated[
        str, typer.Option("--policy", "-p", help="The version to approve: id[@ref].")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for report.html, summary.md.")
    ],
    against: Annotated[str | None, typer.Option(help="The version it replaces: id@ref.")] = None,
    corpus: Annotated[Path | None, typer.Option(help="Corpus to backtest on.")] = None,
    history: Annotated[Path | None, typer.Option(help="Decision history to replay.")] = None,
    sweep_spec: Annotated[
        str | None,
        typer.Option("--sweep", help="PARAMETER=VALUES, e.g. thresholds.review=0.4:0.9:0.05."),
    ] = None,
    sessions_per_hour: Annotated[int, typer.Option(min=1)] = 10_000,
    jobs: Annotated[int, typer.Option(help="Worker processes for Rego policies.")] = 1,
    policies: PoliciesOption = DEFAULT_POLICIES,
) -> None:
    """The board packet: self-contained HTML (inline SVG plots) and a Markdown summary."""
    from datetime import date

    from governance.checks import check_policy_dir
    from governance.report_board import governance_diff, render_board_packet
    from simulations.backtest import backtest
    from simulations.corpus import read_corpus
    from simulations.diff import diff_versions, parse_values, sweep
    from simulations.replay import read_history, replay

    repo = PolicyRepository(policies)
    new = repo.get(policy)
    old = repo.get(against) if against else None
    packet: dict[str, Any] = {
        "policy": {"id": new.id, "version": new.manifest.version, "digest": new.digest},
        "new": None,
    }
    if corpus is not None:
        table, meta = read_corpus(corpus)
        opts: dict[str, Any] = {
            "corpus_path": corpus,
            "jobs": jobs,
            "sessions_per_hour": sessions_per_hour,
        }
        ev_new, packet["new"] = backtest(repo, policy, table, **opts)
        if against:
            ev_old, packet["old"] = backtest(repo, against, table, **opts)
            packet["diff"] = diff_versions(ev_new, ev_old, table)
        if sweep_spec:
            param, _, values = sweep_spec.partition("=")
            packet["sweep"] = sweep(new, table, param, parse_values(values))
        packet["evidence"] = {
            "profile": meta.get("profile"),
            "hand_set_signals": packet["new"]["corpus"]["hand_set_signals"],
        }
    if history is not None:
        packet["replay"] = replay(read_history(history), new)
    if old is not None:
        packet["policy_diff"] = _policy_diff(old.path, new.path)
    problems = check_policy_dir(
        new.path,
        policy_version=new.manifest.version,
        fields_read=new.fields_read(),
        today=date.today(),
    )
    packet["governance"] = {
        "problems": [str(p) for p in problems],
        "diff": governance_diff(old.path, new.path) if old is not None else None,
    }
    html_path, md_path = render_board_packet(packet, output)
    typer.echo(f"wrote {html_path} and {md_path}")
    typer.echo(
        f"sign off with: liveguard governance sign-off {new.id} --digest {new.digest} "
        f"--by NAME --report {md_path} --key KEY.pem"
    )


@governance_app.command("keygen")
@sim_errors
def keygen_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Private key file (PEM, 0600).")],
) -> None:
    """A board member's Ed25519 key; prints the public key for the keyring."""
    import os

    from governance.signoff import generate_key

    pem, public = generate_key()
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    typer.echo(f"wrote {output}; add this public key to policies/_signoffs/keyring.yaml:")
    typer.echo(public)


@governance_app.command("sign-off")
@sim_errors
def sign_off_cmd(
    policy_id: Annotated[str, typer.Argument(metavar="ID", help="Policy id.")],
    digest: Annotated[str, typer.Option(help="The digest approved (sha256:…).")],
    by: Annotated[str, typer.Option(help="Who approves.")],
    report: Annotated[Path, typer.Option(help="The report the approval rests on.")],
    key: Annotated[
        Path, typer.Option(envvar="LIVEGUARD_SIGNOFF_KEY", help="Your Ed25519 private key (PEM).")
    ],
    statement: Annotated[str, typer.Option(help="Conditions or remarks, signed too.")] = "",
    policies: PoliciesOption = DEFAULT_POLICIES,
) -> None:
    """Record the board's signed approval of one digest (commit the file it writes)."""
    from governance.signoff import load_private_key, sign_off

    repo = PolicyRepository(policies)
    current = repo.get(policy_id)
    if current.digest != digest:
        raise fail(
            f"--digest: {policy_id}'s folder has digest {current.digest}, not {digest}; sign "
            "off the version the report was made on, from a checkout of it"
        )
    path = sign_off(
        policies,
        policy_id=policy_id,
        version=current.manifest.version,
        digest=digest,
        by=by,
        key=load_private_key(key),
        report=report,
        statement=statement,
    )
    typer.echo(f"wrote {path}; commit it: git add {path}")


@governance_app.command("sign-offs")
@sim_errors
def sign_offs_cmd(
    ids: Annotated[list[str] | None, typer.Argument(help="Policy ids; default: all.")] = None,
    policies: PoliciesOption = DEFAULT_POLICIES,
) -> None:
    """Which live versions (the digests in the working tree) lack a valid sign-off; exit 1 if any."""
    from governance.signoff import unsigned

    repo = PolicyRepository(policies)
    live = [(pid, repo.get(pid).digest) for pid in ids or repo.ids()]
    missing = unsigned(policies, live)
    for status in missing:
        for line in status.problems:
            typer.echo(line)
    typer.echo(f"{len(live)} live versions, {len(missing)} without a valid sign-off")
    if missing:
        raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    # The governance commands above registered on import (governance_app is shared).
    app.add_typer(simulate_app, name="simulate")
