"""Seeded, reproducible session corpora from the scenario catalog (Parquet via pyarrow).

A corpus is one row per session: its scenario and ground truth, the request context as
columns named by request field (``identity.assurance``, ``transaction.value``, …; null when
the session has no such part) and per signal ``<name>.score`` / ``<name>.confidence`` (NaN
when the session carries no such signal). With a detector response profile, audio signals
are the detectors' measured outputs on a drawn clip × condition (``audio.clip`` and
``audio.condition`` say which); without one, each profile signal's hand-set fallback is
used and the corpus metadata says so.

The same seed, scenarios and profile give the same bytes: one ``SeedSequence`` per
scenario, counts by largest remainder (not sampled), no timestamps in the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq

from engine.core.conditions import REQUEST_FIELDS
from engine.core.models import DecisionRequest
from simulations.files import write_atomically
from simulations.masks import Coded
from simulations.scenarios import Categorical, HandSet, Number, Scenario, ScenarioError
from simulations.vectorized import Batch

__all__ = [
    "CORPUS_KEY",
    "MAX_SESSIONS",
    "CorpusError",
    "batch_from_corpus",
    "corpus_metadata",
    "generate_corpus",
    "read_corpus",
    "requests_from_corpus",
    "signal_names",
]

MAX_SESSIONS = 20_000_000
CORPUS_KEY = b"liveguard.corpus"
NUMERIC = {"identity.seconds_since_auth", "identity.failed_attempts", "transaction.value"}
BOOLEAN = {f for f, k in REQUEST_FIELDS.items() if k is bool}


class CorpusError(ValueError):
    pass


def _counts(shares: Sequence[float], n: int) -> list[int]:
    """Sessions per scenario: proportional to shares, rounded by largest remainder."""
    w = np.asarray(shares, dtype=float)
    exact = w / w.sum() * n
    counts = np.floor(exact).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts.tolist()


def _categorical(rng: np.random.Generator, dist: Categorical, n: int) -> pa.Array:
    values = list(dist.weights)
    p = np.array([dist.weights[v] for v in values], dtype=float)
    idx = rng.choice(len(values), size=n, p=p / p.sum()).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(idx), pa.array(values, pa.string()))


def _number(rng: np.random.Generator, d: Number, n: int) -> np.ndarray:
    if d.constant is not None:
        x = np.full(n, float(d.constant))
    elif d.uniform is not None:
        x = rng.uniform(d.uniform[0], d.uniform[1], n)
    elif d.lognormal is not None:
        x = rng.lognormal(d.lognormal[0], d.lognormal[1], n)
    elif d.poisson is not None:
        x = rng.poisson(d.poisson, n).astype(float)
    elif d.beta is not None:
        x = rng.beta(d.beta[0], d.beta[1], n)
    else:
        assert d.choice is not None
        values = np.array(list(d.choice), dtype=float)
        p = np.array(list(d.choice.values()), dtype=float)
        x = values[rng.choice(len(values), size=n, p=p / p.sum())]
    return np.round(x, d.round) if d.round is not None else x


def _masked(values: pa.Array | np.ndarray, present: np.ndarray) -> pa.Array:
    arr = values if isinstance(values, pa.Array) else pa.array(values)
    return pa.compute.if_else(pa.array(present), arr, pa.nulls(len(present), arr.type))


def _scenario_rows(
    sc: Scenario,
    n: int,
    rng: np.random.Generator,
    profile: pa.Table | None,
    signals: Sequence[str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Columns for ``n`` sessions of one scenario, and where each signal came from."""
    ctx = sc.context
    cols: dict[str, Any] = {
        "scenario": pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, np.int32)), pa.array([sc.id])
        ),
        "attack": np.full(n, sc.is_attack),
        "attack_type": pa.array([sc.attack_type] * n, pa.string()),
        "session.channel": _categorical(rng, ctx.channel, n),
        "session.kind": _categorical(rng, ctx.kind, n),
        "session.participant": _categorical(rng, ctx.participant, n),
        "session.consent.media_analysis": rng.random(n) < ctx.consent.media_analysis,
        "session.consent.raw_media_escalation": rng.random(n) < ctx.consent.raw_media_escalation,
        "identity.assurance": _categorical(rng, ctx.identity.assurance, n),
    }
    ident = ctx.identity
    everyone = np.ones(n, dtype=bool)
    cols["identity.method"] = (
        _categorical(rng, ident.method, n) if ident.method else pa.nulls(n, pa.string())
    )
    cols["identity.seconds_since_auth"] = (
        pa.array(np.maximum(0, np.round(_number(rng, ident.seconds_since_auth, n))))
        if ident.seconds_since_auth
        else pa.nulls(n, pa.float64())
    )
    cols["identity.failed_attempts"] = pa.array(
        np.maximum(0, np.round(_number(rng, ident.failed_attempts, n)))
    )
    tx = ctx.transaction
    has_tx = rng.random(n) < tx.present if tx else ~everyone
    for field in ("kind", "value", "currency"):
        key = f"transaction.{field}"
        if tx is None:
            cols[key] = pa.nulls(n, pa.float64() if field == "value" else pa.string())
        elif field == "value":
            cols[key] = _masked(np.maximum(0.0, _number(rng, tx.value, n)), has_tx)
        else:
            cols[key] = _masked(_categorical(rng, getattr(tx, field), n).cast(pa.string()), has_tx)
    dev = ctx.device
    has_dev = rng.random(n) < dev.present if dev else ~everyone
    if dev is None:
        cols["device.posture"] = pa.nulls(n, pa.string())
        cols["device.new_device"] = pa.nulls(n, pa.bool_())
        cols["device.geo_mismatch"] = pa.nulls(n, pa.bool_())
    else:
        cols["device.posture"] = _masked(
            _categorical(rng, dev.posture, n).cast(pa.string()), has_dev
        )
        cols["device.new_device"] = _masked(rng.random(n) < dev.new_device, has_dev)
        cols["device.geo_mismatch"] = _masked(rng.random(n) < dev.geo_mismatch, has_dev)

    sources: dict[str, str] = {}
    draw = None
    if profile is not None and sc.audio is not None:
        a = sc.audio
        cand = np.array(
            [
                i
                for i, (lab, cond, sys_, corp) in enumerate(
                    zip(
                        profile.column("label").to_pylist(),
                        profile.column("condition").to_pylist(),
                        profile.column("system").to_pylist(),
                        profile.column("corpus").to_pylist(),
                        strict=True,
                    )
                )
                if a.matches(lab, cond, sys_, corp)
            ],
            dtype=np.int64,
        )
        if cand.size == 0:
            raise ScenarioError(
                [
                    f"scenario {sc.id}: audio: the profile has no clips with label {a.label}, "
                    f"conditions {', '.join(a.conditions)}, systems {', '.join(a.systems)}, "
                    f"corpora {', '.join(a.corpora)} (profile more clips or conditions)"
                ]
            )
        draw = cand[rng.integers(0, cand.size, n)]
        cols["audio.clip"] = profile.column("clip").take(pa.array(draw))
        cols["audio.condition"] = profile.column("condition").take(pa.array(draw))
    else:
        cols["audio.clip"] = pa.nulls(n, pa.string())
        cols["audio.condition"] = pa.nulls(n, pa.string())
    for name in signals:
        spec = sc.signals.get(name)
        score = np.full(n, np.nan)
        conf = np.full(n, np.nan)
        if spec is not None:
            present = rng.random(n) < spec.present
            if spec.from_profile and draw is not None:
                sources[name] = "profile"
                if f"{name}.score" in profile.column_names:  # type: ignore[union-attr]
                    score = profile.column(f"{name}.score").to_numpy()[draw]  # type: ignore[union-attr]
                    conf = profile.column(f"{name}.confidence").to_numpy()[draw]  # type: ignore[union-attr]
                # else: the detectors emitted nothing for these clips; absent, as measured
            else:
                sources[name] = "fallback" if spec.from_profile else "hand_set"
                hd: HandSet = spec.hand_dist()
                score = np.clip(_number(rng, hd.score, n), 0.0, 1.0)
                conf = np.clip(_number(rng, hd.confidence, n), 0.0, 1.0)
            score = np.where(present, score, np.nan)
            conf = np.where(present & ~np.isnan(score), conf, np.nan)
        cols[f"{name}.score"] = score
        cols[f"{name}.confidence"] = conf
    return cols, sources


def signal_names(scenarios: Sequence[Scenario]) -> list[str]:
    return sorted({n for s in scenarios for n in s.signals})


def generate_corpus(
    scenarios: Sequence[Scenario],
    sessions: int,
    seed: int,
    *,
    profile: pa.Table | None = None,
    profile_meta: dict[str, Any] | None = None,
    profile_digest: str | None = None,
) -> pa.Table:
    """``sessions`` sessions over ``scenarios`` in proportion to their shares, shuffled."""
    if not 1 <= sessions <= MAX_SESSIONS:
        raise CorpusError(f"--sessions: expected 1 to {MAX_SESSIONS:,}, got {sessions}")
    if not scenarios:
        raise CorpusError("--scenarios: expected at least one scenario")
    names = signal_names(scenarios)
    counts = _counts([s.share for s in scenarios], sessions)
    children = np.random.SeedSequence(seed).spawn(len(scenarios) + 1)
    parts: list[pa.Table] = []
    provenance: dict[str, dict[str, str]] = {}
    for sc, n, child in zip(scenarios, counts, children, strict=False):
        cols, sources = _scenario_rows(sc, n, np.random.default_rng(child), profile, names)
        provenance[sc.id] = sources
        parts.append(_as_table(cols))
    table = pa.concat_tables(parts, promote_options="permissive").combine_chunks()
    order = np.random.default_rng(children[-1]).permutation(sessions)
    table = table.take(pa.array(order))
    table = table.add_column(0, "session", pa.array(np.arange(sessions, dtype=np.int64)))
    meta = {
        "seed": seed,
        "sessions": sessions,
        "scenarios": [
            {
                "id": s.id,
                "title": s.title,
                "ground_truth": s.ground_truth,
                "attack_type": s.attack_type,
                "share": s.share,
                "sessions": n,
                "signals": provenance[s.id],
            }
            for s, n in zip(scenarios, counts, strict=True)
        ],
        "signals": names,
        "profile": None if profile is None else {"sha256": profile_digest, **(profile_meta or {})},
    }
    return table.replace_schema_metadata({CORPUS_KEY: json.dumps(meta, sort_keys=True)})


def _as_table(cols: dict[str, Any]) -> pa.Table:
    arrays = {}
    for k, v in cols.items():
        arr = v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if pa.types.is_null(arr.type) or pa.types.is_dictionary(arr.type):
            arr = arr.cast(pa.string())
        arrays[k] = arr
    return pa.table(arrays)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


#: Sessions per Parquet row group: the unit parallel and Dask backtests hand to a worker.
ROW_GROUP = 131_072


def write_corpus(table: pa.Table, output: Path) -> None:
    # Scores, confidences and amounts are near-random doubles: a dictionary never fits and
    # Snappy saves little (the runs of NaN of absent signals) but costs five times the time of
    # reading them plain, which a backtest of millions of sessions spends on little else.
    floats = {f.name for f in table.schema if pa.types.is_floating(f.type)}
    # A column without gaps is written REQUIRED: no definition level per session to decode.
    required = pa.schema(
        [f.with_nullable(table.column(f.name).null_count > 0) for f in table.schema],
        metadata=table.schema.metadata,
    )
    write_atomically(
        table.cast(required),
        output,
        row_group_size=ROW_GROUP,
        use_dictionary=[c for c in table.column_names if c not in floats],
        compression={c: "none" if c in floats else "snappy" for c in table.column_names},
    )


#: Columns a request cannot do without (its required fields) and the ground truth.
ALWAYS_READ = (
    "session",
    "scenario",
    "attack",
    "attack_type",
    "session.channel",
    "session.kind",
    "session.participant",
    "session.consent.media_analysis",
    "session.consent.raw_media_escalation",
    "identity.assurance",
    "identity.failed_attempts",
)


def columns_for(fields: set[str], signals: set[str]) -> list[str]:
    """The corpus columns a policy reading ``fields`` and weighting ``signals`` needs: a
    transaction or device part comes whole (a request has all of it or none)."""
    cols = set(ALWAYS_READ) | {f for f in fields if f in REQUEST_FIELDS}
    for part in ("transaction.", "device."):
        if any(f.startswith(part) for f in cols):
            cols |= {f for f in REQUEST_FIELDS if f.startswith(part)}
    cols |= {f"{n}.{a}" for n in signals for a in ("score", "confidence")}
    return sorted(cols)


def read_corpus(
    path: Path, *, max_sessions: int = MAX_SESSIONS, columns: list[str] | None = None
) -> tuple[pa.Table, dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"--corpus: {path}: no such file")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorpusError(f"--corpus: {path}: not a Parquet file ({exc})") from None
    raw = (pf.schema_arrow.metadata or {}).get(CORPUS_KEY)
    if raw is None:
        raise CorpusError(
            f"--corpus: {path}: not a liveguard corpus (write one with 'liveguard simulate generate')"
        )
    if pf.metadata.num_rows > max_sessions:
        raise CorpusError(
            f"--corpus: {path}: {pf.metadata.num_rows:,} sessions, more than {max_sessions:,}"
        )
    return _read(pf, path, columns, None, json.loads(raw))


def _read(
    pf: pq.ParquetFile,
    path: Path,
    columns: list[str] | None,
    row_groups: list[int] | None,
    meta: dict[str, Any],
) -> tuple[pa.Table, dict[str, Any]]:
    # Strings as dictionaries: each distinct value decoded once, not once per session.
    strings = [f.name for f in pf.schema_arrow if pa.types.is_string(f.type)]
    if columns is not None:  # only what the policy reads: less to decode
        columns = [c for c in columns if c in pf.schema_arrow.names]
        meta["signals"] = [n for n in meta.get("signals", []) if f"{n}.score" in columns]
    if row_groups is None:
        table = pq.read_table(path, columns=columns, read_dictionary=strings, memory_map=True)
    else:
        part = pq.ParquetFile(
            path,
            read_dictionary=[c for c in strings if columns is None or c in columns],
            memory_map=True,
        )
        table = part.read_row_groups(row_groups, columns=columns)
    return table.replace_schema_metadata({CORPUS_KEY: json.dumps(meta, sort_keys=True)}), meta


def read_row_groups(
    path: Path, row_groups: list[int], columns: list[str] | None = None
) -> tuple[pa.Table, dict[str, Any]]:
    """Some row groups of a corpus (a worker's share of a parallel backtest)."""
    pf = pq.ParquetFile(path)
    raw = (pf.schema_arrow.metadata or {}).get(CORPUS_KEY)
    if raw is None:
        raise CorpusError(f"--corpus: {path}: not a liveguard corpus")
    return _read(pf, Path(path), columns, row_groups, json.loads(raw))


def corpus_metadata(table: pa.Table) -> dict[str, Any]:
    raw = (table.schema.metadata or {}).get(CORPUS_KEY)
    return json.loads(raw) if raw else {}


def codes(col: pa.ChunkedArray | pa.Array) -> tuple[list[Any], np.ndarray]:
    """A column's distinct values and each row's index into them (-1 = null)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_dictionary(col.type):
        col = pa.compute.dictionary_encode(col)
    idx = col.indices
    # int32 codes, no copy when nothing is null (the common case for required fields).
    idx = (idx.fill_null(-1) if idx.null_count else idx).to_numpy(zero_copy_only=False)
    return col.dictionary.to_pylist(), idx


def _coded(col: pa.ChunkedArray | pa.Array) -> Coded:
    """A categorical column as its dictionary and codes: conditions on it are evaluated once
    per distinct value (``simulations.masks``), not once per session."""
    values, idx = codes(col)
    return Coded(values, idx)


def _booleans(col: pa.ChunkedArray) -> np.ndarray | Coded:
    if not col.null_count:
        return col.to_numpy(zero_copy_only=False).astype(bool)
    # Some sessions lack the field (no device, say): False/True as codes 0/1, absent -1.
    flat = col.combine_chunks()
    values = flat.fill_null(False).to_numpy(zero_copy_only=False).astype(np.int8)
    valid = flat.is_valid().to_numpy(zero_copy_only=False)
    return Coded([False, True], np.where(valid, values, np.int8(-1)))


def batch_from_corpus(table: pa.Table) -> Batch:
    """The corpus as the vectorized evaluator's columns."""
    n = table.num_rows
    context: dict[str, np.ndarray | Coded] = {}
    for field in REQUEST_FIELDS:
        if field not in table.column_names:
            continue
        col = table.column(field)
        if field in NUMERIC:
            context[field] = col.to_numpy().astype(float)  # nulls → NaN
        elif field in BOOLEAN:
            context[field] = _booleans(col)
        else:  # categorical, ordinal labels included (conditions rank them)
            context[field] = _coded(col)
    scores: dict[str, np.ndarray] = {}
    confidences: dict[str, np.ndarray] = {}
    for name in corpus_metadata(table).get("signals", []):
        # NaN where absent; the evaluator reads a NaN confidence as 0.
        scores[name] = table.column(f"{name}.score").to_numpy()
        confidences[name] = table.column(f"{name}.confidence").to_numpy()
    return Batch(size=n, context=context, scores=scores, confidences=confidences)


def requests_from_corpus(
    table: pa.Table, rows: Sequence[int] | None = None
) -> list[DecisionRequest]:
    """Sessions as decision requests (for ``decide()``, Rego, and proving them equal)."""
    names = corpus_metadata(table).get("signals", [])
    sub = table if rows is None else table.take(pa.array(list(rows), pa.int64()))
    out: list[DecisionRequest] = []
    for r in sub.to_pylist():
        raw: dict[str, Any] = {
            "session": {
                "id": f"sim-{r['session']}",
                "channel": r["session.channel"],
                "kind": r["session.kind"],
                "participant": r["session.participant"],
                "consent": {
                    "media_analysis": r["session.consent.media_analysis"],
                    "raw_media_escalation": r["session.consent.raw_media_escalation"],
                },
            },
            "identity": {
                k: v
                for k, v in {
                    "assurance": r["identity.assurance"],
                    "method": r.get("identity.method"),
                    "seconds_since_auth": None
                    if r.get("identity.seconds_since_auth") is None
                    else int(r["identity.seconds_since_auth"]),
                    "failed_attempts": int(r["identity.failed_attempts"]),
                }.items()
                if v is not None
            },
            "signals": [
                {
                    "name": name,
                    "modality": name.split(".")[0],
                    "score": float(r[f"{name}.score"]),
                    "confidence": float(r[f"{name}.confidence"]),
                    "detector": f"{name.split('.')[1]}@0.0.0-sim",
                }
                for name in names
                if r[f"{name}.score"] is not None and not np.isnan(r[f"{name}.score"])
            ],
        }
        if r.get("transaction.kind") is not None:
            raw["transaction"] = {
                "kind": r["transaction.kind"],
                "value": float(r["transaction.value"]),
                "currency": r["transaction.currency"],
            }
        if r.get("device.posture") is not None:
            raw["device"] = {
                "posture": r["device.posture"],
                "new_device": bool(r["device.new_device"]),
                "geo_mismatch": bool(r["device.geo_mismatch"]),
            }
        out.append(DecisionRequest.model_validate(raw))
    return out
