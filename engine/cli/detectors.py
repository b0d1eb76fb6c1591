"""CLI commands for detectors: `liveguard analyze` and `liveguard detectors ...`.

This is an engine edge: it may import `detectors` (the core may not).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

app_detectors = typer.Typer(help="Detector plugins: list and evaluate.", no_args_is_help=True)

EXIT_BAD_INPUT = 2


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _decide(signals: list, policy_id: str, policies: Path, session_id: str) -> object:
    """Build a DecisionRequest from the signals with conservative defaults and decide it."""
    from engine import DecisionRequest, decide, load_policy

    policy = load_policy(policy_id, policies)
    applies = policy.manifest.applies_to
    channel = applies.channels[0]
    kind = next((k for k in applies.kinds if k != "*"), "call")
    request = DecisionRequest.model_validate(
        {
            "session": {
                "id": session_id,
                "channel": channel,
                "kind": kind,
                "participant": "external",
                "consent": {"media_analysis": True, "raw_media_escalation": False},
            },
            "identity": {"assurance": "low"},
            "signals": [s.model_dump(mode="json") for s in signals],
            "policy": policy_id,
        }
    )
    return decide(request, policy)


def analyze(
    audio: Annotated[
        Path | None, typer.Option("--audio", help="Call recording (wav/flac/ogg/mp3...).")
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="CSV path,label[,system] (paths relative to it): analyze every file, one "
            "result per file.",
        ),
    ] = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="With --manifest: one JSON line per file.")
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1024, help="Files streamed at once.")
    ] = 32,
    mouth_series: Annotated[
        Path | None,
        typer.Option(
            "--mouth-series", help="CSV time,mouth_openness from an edge landmark tracker."
        ),
    ] = None,
    video: Annotated[
        Path | None, typer.Option("--video", help="Video file: face landmarks extracted locally.")
    ] = None,
    policy: Annotated[
        str | None, typer.Option("--policy", "-p", help="Decide with this policy at the end.")
    ] = None,
    two_party: Annotated[
        bool, typer.Option("--two-party", help="Stereo file: left = agent, right = caller.")
    ] = False,
    hop_ms: Annotated[int, typer.Option("--hop-ms", min=250, max=5000)] = 1000,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document for machines.")
    ] = False,
    policies: Annotated[
        Path, typer.Option("--policies", envvar="LIVEGUARD_POLICIES", help="Policy repository.")
    ] = Path("policies"),
) -> None:
    """Stream a recorded call through the detectors; print signals as they come and the decision."""
    if manifest is not None:
        if audio is not None:
            raise _fail("give --audio or --manifest, not both")
        _analyze_manifest(manifest, policy, policies, hop_ms, jsonl or as_json, concurrency)
        return
    if audio is None:
        raise _fail("give --audio FILE or --manifest FILE.csv")
    from detectors.analyze import AnalysisInput, format_emission, latest_signals, stream_file
    from detectors.audio_io import AudioInputError
    from detectors.series_io import SeriesInputError, read_series_csv

    series: dict = {}
    try:
        if mouth_series is not None and video is not None:
            raise _fail("give --video or --mouth-series, not both")
        if mouth_series is not None:
            series["mouth_openness"] = read_series_csv(mouth_series)
        if video is not None:
            from detectors.video import SERIES_NAMES, VideoInputError, extract_series

            try:
                faces = extract_series(video)
            except ImportError as exc:
                raise _fail(str(exc)) from None
            except VideoInputError as exc:
                raise _fail(str(exc)) from None
            series = {name: faces.series(name) for name in SERIES_NAMES}
        inp = AnalysisInput(audio=audio, series=series or None, two_party=two_party)
        on = None if as_json else (lambda e: typer.echo(format_emission(e)))
        emissions = stream_file(inp, hop_ms=hop_ms, on_emission=on)
    except (AudioInputError, SeriesInputError) as exc:
        raise _fail(str(exc)) from None
    final = latest_signals(emissions)
    decision = None
    if policy is not None:
        from engine.core.errors import LiveguardError

        session_id = re.sub(r"[^A-Za-z0-9._:\-]", "-", f"analyze-{audio.stem}")[:128]
        try:
            decision = _decide(final, policy, policies, session_id)
        except LiveguardError as exc:
            raise _fail("; ".join(exc.lines())) from None
    if as_json:
        doc = {
            "audio": str(audio),
            "emissions": [
                {"t_ms": e.start_ms, "party": e.party, "signal": e.signal.model_dump(mode="json")}
                for e in emissions
            ],
            "signals": [s.model_dump(mode="json") for s in final],
            "decision": json.loads(decision.model_dump_json()) if decision is not None else None,  # type: ignore[attr-defined]
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo("final signals:")
    for s in final:
        msg = s.evidence[0].message if s.evidence else ""
        typer.echo(f"  {s.name:<24} score {s.score:.2f}  conf {s.confidence:.2f}  {msg}")
    if decision is not None:
        from engine.cli.main import render

        typer.echo("")
        typer.echo(render(decision))  # type: ignore[arg-type]


def _second_pass_names(decision: object, ran: set[str]) -> frozenset[str]:
    """The detectors a decision's second_pass obligation lists that the first pass did not
    run (empty when it asks for none)."""
    for ob in getattr(decision, "obligations", ()):
        if getattr(ob, "kind", None) == "second_pass":
            return frozenset(ob.detectors) - ran
    return frozenset()


def _analyze_manifest(
    manifest: Path, policy: str | None, policies: Path, hop_ms: int, jsonl: bool, concurrency: int
) -> None:
    """Batch mode: every file of the manifest through one micro-batching runtime."""
    import contextlib
    import sys

    from detectors.analyze import SecondPassRunner, analyze_files, read_file_manifest
    from detectors.audio_io import AudioInputError
    from detectors.progress import progress_bar

    try:
        files = read_file_manifest(manifest)
    except AudioInputError as exc:
        raise _fail(str(exc)) from None
    if policy is not None:  # a bad policy id fails before any file is streamed
        from engine import load_policy
        from engine.core.errors import LiveguardError

        try:
            load_policy(policy, policies)
        except LiveguardError as exc:
            raise _fail("; ".join(exc.lines())) from None
    with (
        contextlib.closing(SecondPassRunner(hop_ms=hop_ms)) as second,
        progress_bar(sys.stderr.isatty()) as bar,
    ):
        task = bar.add_task("analyze", total=len(files))
        for res in analyze_files(
            files,
            hop_ms=hop_ms,
            concurrency=concurrency,
            on_done=lambda n: bar.update(task, completed=n),
        ):
            decision, first_action, second_signals = None, None, None
            failed = set(res.failed_detectors)
            if policy is not None and res.error is None:
                session_id = re.sub(r"[^A-Za-z0-9._:\-]", "-", f"analyze-{Path(res.path).stem}")
                decision = _decide(res.signals, policy, policies, session_id[:128])
                # Stage 2, as a live session gets it: only when the decision asks, only the
                # detectors it lists that the first pass did not run; then decided again.
                wanted = _second_pass_names(decision, {s.name for s in res.signals})
                if wanted:
                    second_signals = second.run(Path(res.path), wanted, failed)
                    first_action = decision.action.value  # type: ignore[attr-defined]
                    decision = _decide(
                        [*res.signals, *second_signals], policy, policies, session_id[:128]
                    )
            doc = {
                "path": res.path,
                "label": res.label,
                "system": res.system,
                "signals": [s.model_dump(mode="json") for s in res.signals],
                # null: no second pass was asked for (or nothing it listed is registered)
                "second_pass": [s.model_dump(mode="json") for s in second_signals]
                if second_signals
                else None,
                "first_pass_action": first_action,
                "decision": json.loads(decision.model_dump_json()) if decision else None,  # type: ignore[attr-defined]
                "error": res.error,
                # detectors that raised on this file (first or second pass): a missing
                # signal with a reason; the log has the first failure of each
                "failed_detectors": sorted(failed),
            }
            if jsonl:
                typer.echo(json.dumps(doc))
            else:
                sv = next((s for s in res.signals if s.name == "audio.synthetic_voice"), None)
                act = doc["decision"]["action"] if doc["decision"] else "-"
                sv_txt = f"synthetic {sv.score:.2f} conf {sv.confidence:.2f}" if sv else "no score"
                typer.echo(f"{res.path}\t{res.error or sv_txt}\t{act}")


@app_detectors.command("list")
def list_detectors() -> None:
    """The detectors registered under the `liveguard.detectors` entry-point group."""
    from detectors.registry import DetectorRegistrationError, discover

    try:
        registry = discover()
    except DetectorRegistrationError as exc:
        raise _fail(str(exc)) from None
    for det in registry:
        typer.echo(
            f"{det.name:<26} {det.version:<8} {det.modality.value:<9} consumes {', '.join(det.consumes)}"
        )


@app_detectors.command("evaluate")
def evaluate_cmd(
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="DIR with manifest.csv (path,label[,system,speaker,corpus]); repeatable. "
            "Default: the shared audio/ and audio_neural/ sets together.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    variant: Annotated[str, typer.Option("--variant", help="fp32 or int8 model.")] = "fp32",
    loso: Annotated[bool, typer.Option("--loso/--no-loso", help="Leave-one-system-out.")] = True,
    cv: Annotated[
        bool, typer.Option("--cv/--no-cv", help="Speaker-disjoint cross-validation.")
    ] = True,
    corpus_out: Annotated[
        bool,
        typer.Option("--corpus-out/--no-corpus-out", help="Leave-one-bona-fide-corpus-out."),
    ] = True,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            help="Retrain this recipe (v1, v2, v3, v4, v5, v6, v6r, v6c, v7, v8, v9, deep_stats, deep_stats_p, deep_v1); default: the shipped one's.",
        ),
    ] = None,
    detector: Annotated[
        str,
        typer.Option(
            "--detector",
            help="audio.synthetic_voice (edge screener) or audio.synthetic_voice_deep "
            "(second-pass model).",
        ),
    ] = "audio.synthetic_voice",
    loso_quick: Annotated[
        bool,
        typer.Option(
            "--loso-quick",
            help="One LOSO refit per held-out system instead of one per speaker fold.",
        ),
    ] = False,
    systems: Annotated[
        str | None,
        typer.Option("--systems", help="Comma list: LOSO only for these held-out systems."),
    ] = None,
    conditions: Annotated[
        str | None,
        typer.Option("--conditions", help="Comma list of call conditions (default: all)."),
    ] = None,
) -> None:
    """EER, ROC AUC and error rates at the operating point for audio.synthetic_voice or the
    second-pass audio.synthetic_voice_deep (leave-one-system-out, per call condition)."""
    from detectors.audio_io import AudioInputError, shared_data_dir
    from detectors.degrade import CONDITIONS
    from detectors.training.evaluation import evaluate, format_report

    conds = None
    if conditions:
        conds = [c.strip() for c in conditions.split(",") if c.strip()]
        unknown = [c for c in conds if c not in CONDITIONS]
        if unknown:
            raise _fail(
                f"unknown condition(s) {', '.join(unknown)}; known: {', '.join(CONDITIONS)}"
            )
    if variant not in ("fp32", "int8"):
        raise _fail("--variant must be fp32 or int8")
    dirs = data or [shared_data_dir() / "audio", shared_data_dir() / "audio_neural"]
    for d in dirs:
        if not (d / "manifest.csv").is_file():
            raise _fail(f"{d}/manifest.csv not found (expected columns path,label[,system])")
    try:
        report = evaluate(
            dirs,
            conditions=conds,
            loso=loso,
            cross_validation=cv,
            corpus_out=corpus_out,
            variant=variant,
            recipe_name=recipe,
            detector=detector,
            loso_quick=loso_quick,
            loso_groups=[g.strip() for g in systems.split(",")] if systems else None,
        )
    except (AudioInputError, ValueError, KeyError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    typer.echo(format_report(report))


def register(app: typer.Typer) -> None:
    """Attach the detector commands to the root CLI."""
    app.command("analyze")(analyze)
    app.add_typer(app_detectors, name="detectors")
