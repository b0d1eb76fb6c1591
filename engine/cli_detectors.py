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
    audio: Annotated[Path, typer.Option("--audio", help="Call recording (wav/flac/ogg/mp3...).")],
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
        Path, typer.Option("--data", help="DIR with manifest.csv (path,label[,system]).")
    ],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    variant: Annotated[str, typer.Option("--variant", help="fp32 or int8 model.")] = "fp32",
    loso: Annotated[bool, typer.Option("--loso/--no-loso", help="Leave-one-system-out.")] = True,
    conditions: Annotated[
        str | None,
        typer.Option(
            "--conditions",
            help="Comma list: clean,mulaw_8k,gsm_codec,noise_10db,packet_loss_10pct.",
        ),
    ] = None,
) -> None:
    """EER, ROC AUC and error rates at the operating point for audio.synthetic_voice."""
    from detectors.audio_io import AudioInputError
    from detectors.degrade import CONDITIONS
    from detectors.evaluation import evaluate

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
    if not (data / "manifest.csv").is_file():
        raise _fail(f"{data}/manifest.csv not found (expected columns path,label[,system])")
    try:
        report = evaluate(data, conditions=conds, loso=loso, variant=variant)
    except (AudioInputError, ValueError, KeyError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    typer.echo(f"model {report.model}\ndata  {report.data}")
    typer.echo(
        f"\nshipped model (in-sample if DIR is its training set), threshold {report.operating_threshold}:"
    )
    typer.echo(f"  {'condition':<20} {'EER':>6} {'AUC':>6} {'FA@op':>6} {'miss@op':>7}")
    for cond, per in report.shipped.items():
        m = per["overall"]
        typer.echo(
            f"  {cond:<20} {m.eer:6.3f} {m.auc:6.3f} {m.false_alarm_at_op:6.3f} {m.miss_at_op:7.3f}"
        )
    typer.echo("\nper system (clean, shipped model):")
    for name, m in report.shipped.get("clean", next(iter(report.shipped.values()))).items():
        if name != "overall":
            typer.echo(
                f"  {name[:48]:<48} n={m.n_spoof:<4} EER {m.eer:.3f} AUC {m.auc:.3f} miss@op {m.miss_at_op:.3f}"
            )
    if report.cross_validation:
        typer.echo("\nspeaker-disjoint 5-fold cross-validation (retrained):")
        for cond, m in report.cross_validation.items():
            typer.echo(f"  {cond:<20} EER {m.eer:.3f} AUC {m.auc:.3f}")
    if report.leave_one_system_out:
        typer.echo("\nleave-one-system-out (retrained without the system, clean):")
        for name, m in report.leave_one_system_out.items():
            typer.echo(f"  {name[:48]:<48} n={m.n_spoof:<4} EER {m.eer:.3f} AUC {m.auc:.3f}")


def register(app: typer.Typer) -> None:
    """Attach the detector commands to the root CLI."""
    app.command("analyze")(analyze)
    app.add_typer(app_detectors, name="detectors")
