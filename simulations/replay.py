"""Replay of real history under a candidate policy version (OPA-backtest style).

Input: a ``liveguard store export`` file (past decisions, minimized as retained, with review
outcomes). Each decision's retained input and signals are rebuilt into a request and decided
again by the candidate with ``decide()``, then classified:

- ``unchanged``: same action;
- ``changed``: another action (both versions' reason codes are kept);
- ``error``: the candidate failed (its fail_mode decided), or the decision cannot be
  replayed because a field it needs was not retained (the log keeps only what the data-flow
  manifest retains; that is a limit of replay, said as such);
- ``slower``: same action, but the candidate took longer than the original by more than
  ``slower_than_us``.

Where a reviewer resolved the item (``confirmed_attack`` / ``legitimate``), that outcome is
ground truth: per policy version (the historical ones and the candidate) the precision of
step_up, review and block, the overturn rate, and the confirmed attacks the candidate would
let through.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from engine import decide
from engine.core.models import ACTIONS, Action, DecisionRequest
from engine.core.policy import Policy
from simulations.corpus import CorpusError

__all__ = ["MAX_HISTORY", "read_history", "replay"]

MAX_HISTORY = 5_000_000
HISTORY_KEY = b"liveguard.history"
EXAMPLES = 10
SEV = {a.value: i for i, a in enumerate(ACTIONS)}


def read_history(path: Path, *, max_rows: int = MAX_HISTORY) -> pa.Table:
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"--history: {path}: no such file")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorpusError(f"--history: {path}: not a Parquet file ({exc})") from None
    if HISTORY_KEY not in (pf.schema_arrow.metadata or {}):
        raise CorpusError(
            f"--history: {path}: not a decision-history export (write one with "
            "'liveguard store export')"
        )
    if pf.metadata.num_rows > max_rows:
        raise CorpusError(
            f"--history: {path}: {pf.metadata.num_rows:,} rows, more than {max_rows:,}"
        )
    return pf.read()


def _request(row: dict[str, Any]) -> DecisionRequest:
    """The request as the log retained it: input plus signals (detector name@version)."""
    raw = json.loads(row["input"])
    raw["signals"] = [
        {
            "name": s["name"],
            "modality": s["modality"],
            "score": s["score"],
            "confidence": s["confidence"],
            "detector": f"{s['detector']}@{s['detector_version']}",
            "window_ms": s.get("window_ms", 0),
            "evidence": s.get("evidence", []),
        }
        for s in json.loads(row["signals"])
    ]
    return DecisionRequest.model_validate(raw)


def _missing(exc: ValidationError) -> str:
    locs = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
    return "not replayable: " + ", ".join(locs[:5]) + " not retained or invalid"


def _outcomes(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Precision per action and overturn rate over (action, reviewed outcome) pairs."""
    out: dict[str, Any] = {"labelled": len(pairs)}
    for action in (Action.step_up, Action.review, Action.block):
        hits = [o for a, o in pairs if a == action.value]
        conf = sum(o == "confirmed_attack" for o in hits)
        out[f"precision_{action.value}"] = conf / len(hits) if hits else None
        out[f"{action.value}_labelled"] = len(hits)
    acted = [o for a, o in pairs if SEV[a] >= SEV["step_up"]]
    out["overturn_rate"] = sum(o == "legitimate" for o in acted) / len(acted) if acted else None
    out["confirmed_attacks_let_through"] = sum(
        o == "confirmed_attack" and SEV[a] < SEV["step_up"] for a, o in pairs
    )
    return out


def replay(
    history: pa.Table,
    candidate: Policy,
    *,
    slower_than_us: int = 1_000,
    any_policy: bool = False,
) -> dict[str, Any]:
    """Classify every past decision of the candidate's policy under the candidate."""
    rows = history.to_pylist()
    if not any_policy:
        rows = [r for r in rows if r["policy_id"] == candidate.id]
    counts: Counter[str] = Counter()
    flow: Counter[tuple[str, str]] = Counter()
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    labelled_old: dict[str, list[tuple[str, str]]] = defaultdict(list)
    labelled_new: list[tuple[str, str]] = []
    for r in rows:
        try:
            req = _request(r)
        except ValidationError as exc:
            kind, new_action, detail = "error", None, _missing(exc)
        else:
            t0 = time.perf_counter_ns()
            d = decide(req, candidate)
            took = (time.perf_counter_ns() - t0) // 1000
            new_action, detail = d.action.value, None
            if d.error:
                kind, detail = "error", d.error
            elif d.action.value != r["action"]:
                kind = "changed"
            elif took - int(r["decide_us"] or 0) > slower_than_us:
                kind, detail = "slower", f"{took} µs vs {r['decide_us']} µs"
            else:
                kind = "unchanged"
            if kind == "changed":
                detail = {
                    "old_reasons": json.loads(r["reasons"]),
                    "new_reasons": [x.code for x in d.reasons],
                }
            flow[(r["action"], new_action)] += 1
        counts[kind] += 1
        if kind != "unchanged" and len(examples[kind]) < EXAMPLES:
            examples[kind].append(
                {
                    "decision_id": r["decision_id"],
                    "old": {"version": r["policy_version"], "action": r["action"]},
                    "new_action": new_action,
                    "detail": detail,
                }
            )
        outcome = r["review_outcome"]
        if outcome in ("confirmed_attack", "legitimate"):
            labelled_old[r["policy_version"]].append((r["action"], outcome))
            if new_action is not None:
                labelled_new.append((new_action, outcome))
    return {
        "candidate": {
            "id": candidate.id,
            "version": candidate.manifest.version,
            "digest": candidate.digest,
        },
        "decisions": len(rows),
        "slower_than_us": slower_than_us,
        "classification": {
            k: counts.get(k, 0) for k in ("unchanged", "changed", "error", "slower")
        },
        "flow": [{"from": a, "to": b, "sessions": n} for (a, b), n in sorted(flow.items())],
        "examples": dict(examples),
        "outcomes": {
            "by_version": {v: _outcomes(p) for v, p in sorted(labelled_old.items())},
            "candidate": _outcomes(labelled_new),
        },
    }
