"""HTTP decision service under fixed-rate load, next to a bare FastAPI endpoint.

Run by hand: ``.venv/bin/python benchmarks/http.py [--rate 1000] [--duration 30]``.
Needs ``hey`` (Debian package) as the load generator, in its own process. Starts
``liveguard serve`` on SQLite (and on PostgreSQL when ``--pg-url`` answers) and a bare
FastAPI endpoint under the same uvicorn settings, all on 127.0.0.1; loads each at the same
fixed rate, then steps the offered rate up to find the maximum sustainable rate (every
request answered 200, achieved ≥ 95% of offered; the highest step that also kept p99 ≤
10 ms is printed too). Load goes only to
127.0.0.1, for a bounded time. For each store it also prints the service's own group
commits during the fixed-rate run (from its ``/metrics``): how many took over 5, 10, 25 and
50 ms. Every decision waits for its commit and every commit for the disk's fsync, so a
stalled fsync holds back every decision that arrives meanwhile; those counts show how
much of a run's tail the disk put there. Ends with one line:
``RESULT rate=… p99_ms=… bare_p99_ms=… max_rps=… commits_over_10ms=…`` (SQLite;
PostgreSQL fields follow).
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py: run as a script, its folder comes first on sys.path and would
# shadow the standard library's ``http`` package. Drop the folder before importing more.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.store.db import make_engine, migrate
from engine.store.keys import create_key

HOST = "127.0.0.1"  # never anywhere else
MAX_SECONDS, MAX_RATE = 120, 10_000
P99_TARGET_MS = 10.0
BODY = json.loads((ROOT / "examples" / "password-reset.json").read_text())

BARE_APP = """
from fastapi import FastAPI
app = FastAPI()

@app.post("/bare")
async def bare(body: dict) -> dict:
    return {"action": "log", "echo": body.get("policy")}
"""


@dataclass
class Run:
    name: str
    offered: int
    achieved: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    ok: int
    errors: int
    #: Server CPU (user + system, all threads) per answered request, and its split.
    cpu_us: float | None = None
    cpu_split: dict[str, float] = field(default_factory=dict)
    #: The service's own group commits during the run (from its /metrics), if any.
    commits: Commits | None = None

    def line(self) -> str:
        cpu = ""
        if self.cpu_us is not None:
            split = " ".join(f"{k}={v:.0f}" for k, v in sorted(self.cpu_split.items()))
            cpu = f" cpu={self.cpu_us:.0f}us/req ({split})"
        return (
            f"{self.name:<12} offered={self.offered:>5}/s achieved={self.achieved:>7.1f}/s "
            f"p50={self.p50_ms:6.2f}ms p99={self.p99_ms:6.2f}ms max={self.max_ms:7.2f}ms "
            f"ok={self.ok} errors={self.errors}{cpu}"
        )

    @property
    def sustained(self) -> bool:
        """The service keeps up: every request answered 200 and ≥ 95% of the offered rate."""
        return self.errors == 0 and self.achieved >= 0.95 * self.offered

    @property
    def on_target(self) -> bool:
        return self.sustained and self.p99_ms <= P99_TARGET_MS


@dataclass
class Commits:
    """The service's group commits over one run, from ``liveguard_store_commit_seconds``.

    Every decision waits for its commit, and a commit waits for the disk's fsync: one
    commit that stalls holds back every decision that arrives meanwhile (about one per
    millisecond at 1,000/s). Counting the slow ones shows how much of a run's tail the
    disk put there.
    """

    count: int
    seconds: float
    #: Commits that took at least this many milliseconds (histogram bucket bounds).
    at_least_ms: dict[int, int]

    def line(self) -> str:
        mean = self.seconds * 1000 / self.count if self.count else float("nan")
        slow = " ".join(f">{ms}ms={n}" for ms, n in sorted(self.at_least_ms.items()))
        return f"commits n={self.count} mean={mean:.2f}ms {slow}"

    @property
    def over_10ms(self) -> int:
        return self.at_least_ms.get(10, 0)


_SLOW_MS = (5, 10, 25, 50)


def commit_histogram(metrics_url: str) -> dict[str, float]:
    """Cumulative bucket counts (by ``le``), ``count`` and ``sum`` of the commit timer."""
    text = httpx.get(metrics_url, timeout=5).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "liveguard_store_commit_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                out[sample.labels["le"]] = sample.value
            elif sample.name.endswith(("_count", "_sum")):
                out[sample.name.rsplit("_", 1)[1]] = sample.value
    return out


def commits_between(before: dict[str, float], after: dict[str, float]) -> Commits:
    def delta(k: str) -> float:
        return after.get(k, 0.0) - before.get(k, 0.0)

    count = int(delta("count"))
    slow = {ms: count - int(delta(str(ms / 1000))) for ms in _SLOW_MS if str(ms / 1000) in after}
    return Commits(count=count, seconds=delta("sum"), at_least_ms=slow)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code in (200, 404, 405):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def start_liveguard(
    db_url: str,
    log: Path,
    log_level: str,
    writer: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str, str]:
    engine = make_engine(db_url)
    migrate(engine)
    _, key = create_key(engine, "decide", "benchmark")
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "LIVEGUARD_DATABASE_URL": db_url,
        "LIVEGUARD_POLICIES": str(ROOT / "policies"),
        "LIVEGUARD_LOG_FORMAT": "json",
        "LIVEGUARD_LOG_LEVEL": log_level,
        "LIVEGUARD_MAX_IN_FLIGHT": "1024",
        # The bundled policies carry no board sign-off (see README): the logged override.
        "LIVEGUARD_ALLOW_UNSIGNED": "true",
    }
    if writer:
        env["LIVEGUARD_WRITER"] = writer
    env.update(extra_env or {})
    cmd = [sys.executable, "-c", "from engine.cli import main; main()", "serve",
           "--host", HOST, "--port", str(port)]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)
    wait_healthy(f"http://{HOST}:{port}/health", proc)
    return proc, f"http://{HOST}:{port}/v1/decisions", key


def start_bare(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    (tmp / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "bare_app:app", "--host", HOST, "--port", str(port),
           "--log-level", "warning", "--no-access-log"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(f"http://{HOST}:{port}/docs", proc)
    return proc, f"http://{HOST}:{port}/bare"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(p.name))
    return out


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time (user + system) of ``pid``: its main thread (the event loop), the rest, and
    its child processes (the writer process, when there is one)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for child in _children(pid):
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out["children"] = out.get("children", 0.0) + (int(fields[11]) + int(fields[12])) / tick
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = "loop" if task.name == str(pid) else "threads"
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def hey(
    name: str,
    url: str,
    key: str | None,
    rate: int,
    seconds: float,
    body: Path,
    *,
    shape: str = "paced",
    server_pid: int | None = None,
) -> Run:
    """Fixed-rate load from separate processes (hey), latencies merged from its CSV.

    hey starts all its workers' tickers at the same instant, so one hey with C workers at
    q/s each sends C requests at once every 1/q s: at 1,000/s with 100 workers that is a
    burst of 100 every 100 ms, and even a bare endpoint then shows p50 ≈ 10 ms (the burst
    draining). ``paced`` runs several hey processes of 10 workers each, started evenly
    spread over one tick period: at most ~10 requests arrive together, every worker still
    has 100 ms of slack. ``burst`` is the single-process shape, kept for comparison.
    """
    assert url.startswith(f"http://{HOST}:"), "load goes to 127.0.0.1 only"
    rate = min(rate, MAX_RATE)
    seconds = min(seconds, MAX_SECONDS)
    if shape == "burst":
        procs, workers = 1, max(10, min(400, rate // 10))
    else:
        workers = 10
        procs = max(1, min(25, round(rate / 100)))
    per_worker = rate / (procs * workers)
    period = 1.0 / per_worker
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", f"{per_worker:.3f}",
           "-o", "csv", "-m", "POST", "-T", "application/json", "-D", str(body)]  # fmt: skip
    if key:
        cmd += ["-H", f"Authorization: Bearer {key}"]
    cpu0 = cpu_seconds(server_pid) if server_pid else {}
    started = time.monotonic()
    runs: list[subprocess.Popen[str]] = []
    for i in range(procs):
        start_at = started + i * period / procs
        while (wait := start_at - time.monotonic()) > 0:
            time.sleep(wait)
        runs.append(subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, text=True))
    lats: list[float] = []
    ok = errors = 0
    for proc in runs:
        out, _ = proc.communicate(timeout=seconds + 60)
        for row in out.splitlines()[1:]:
            f = row.split(",")
            lats.append(float(f[0]) * 1000)
            if f[6] == "200":
                ok += 1
            else:
                errors += 1
    cpu = cpu_delta(cpu0, cpu_seconds(server_pid)) if server_pid else {}
    lats.sort()
    n = len(lats)

    def pct(p: float) -> float:
        return lats[min(n - 1, int(n * p))] if n else float("nan")

    return Run(
        name=name,
        offered=rate,
        achieved=n / seconds,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        max_ms=lats[-1] if n else float("nan"),
        ok=ok,
        errors=errors,
        cpu_us=(sum(cpu.values()) * 1e6 / n) if cpu and n else None,
        cpu_split={k: v * 1e6 / n for k, v in cpu.items()} if cpu and n else {},
    )


def _num(text: str, pattern: str) -> float:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def max_rate(
    name: str,
    url: str,
    key: str | None,
    body: Path,
    steps: list[int],
    seconds: float,
    **load: Any,
) -> tuple[int, int]:
    """(highest sustained offered rate, highest one that also met p99 ≤ 10 ms)."""
    best = on_target = 0
    for rate in steps:
        r = hey(f"{name}@max", url, key, rate, seconds, body, **load)
        verdict = "on target" if r.on_target else "sustained" if r.sustained else "NOT sustained"
        print(r.line(), verdict, flush=True)
        if not r.sustained:
            break
        best = rate
        if r.on_target:
            on_target = rate
    return best, on_target


def pg_reachable(url: str) -> bool:
    try:
        engine = make_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per fixed-rate run")
    ap.add_argument("--step-seconds", type=float, default=6.0, help="seconds per max-rate step")
    ap.add_argument("--steps", default="250,500,750,1000,1250,1500,2000,2500")
    ap.add_argument("--pg-url", default=os.environ.get(
        "LIVEGUARD_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))  # fmt: skip
    ap.add_argument("--log-level", default="INFO", help="the service's log level")
    ap.add_argument(
        "--shape",
        choices=["paced", "burst"],
        default="paced",
        help="paced: several staggered hey processes (≤ ~10 requests arrive together); "
        "burst: one hey, all workers firing together (the old shape, for comparison)",
    )
    ap.add_argument(
        "--backends",
        default="sqlite,postgresql,sqlite-normal",
        help="which stores to load; sqlite-normal is SQLite with LIVEGUARD_SQLITE_SYNCHRONOUS="
        "normal (no fsync per commit, not power-loss durable): it shows the disk's share of "
        "the tail and is never the RESULT's headline",
    )
    ap.add_argument("--no-max", action="store_true", help="skip the max-rate steps")
    ap.add_argument(
        "--writers",
        default="",
        help="LIVEGUARD_WRITER values to load in turn (e.g. thread,process); the first one "
        "makes the RESULT line. Default: the service's own default only.",
    )
    args = ap.parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("needs 'hey' (apt-get install hey)")
    steps = [int(s) for s in args.steps.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="lg-bench-"))
    body = tmp / "request.json"
    body.write_text(json.dumps(BODY))
    print(
        f"cores={os.cpu_count()} rate={args.rate}/s duration={args.duration}s "
        f"log_level={args.log_level} shape={args.shape} load_avg={os.getloadavg()[0]:.2f}"
    )
    wanted = set(args.backends.split(","))
    results: dict[str, Run] = {}
    maxes: dict[str, tuple[int, int]] = {}

    bare, bare_url = start_bare(tmp)
    try:
        load = {"shape": args.shape, "server_pid": bare.pid}
        hey("warmup", bare_url, None, args.rate, 2, body, **load)
        results["bare"] = hey("bare", bare_url, None, args.rate, args.duration, body, **load)
        print(results["bare"].line(), flush=True)
    finally:
        stop(bare)

    backends = {"sqlite": f"sqlite:///{tmp / 'bench.db'}"} if "sqlite" in wanted else {}
    env_of = {"sqlite-normal": {"LIVEGUARD_SQLITE_SYNCHRONOUS": "normal"}}
    schema = None
    if "postgresql" not in wanted:
        pass
    elif pg_reachable(args.pg_url):
        import psycopg

        schema = f"lgbench_{os.getpid()}"
        conninfo = args.pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {schema}")
        backends["postgresql"] = f"{args.pg_url}?options=-csearch_path%3D{schema}"
    else:
        print(f"postgresql: {args.pg_url} unreachable; skipped")
    if "sqlite-normal" in wanted:
        backends["sqlite-normal"] = f"sqlite:///{tmp / 'bench-normal.db'}"
    try:
        writers = [w for w in args.writers.split(",") if w] or [None]
        runs = [
            (name if i == 0 else f"{name}/{w}", db, w)
            for name, db in backends.items()
            for i, w in enumerate(writers)
        ]
        for name, db, writer in runs:
            if writer is not None and "/" not in name:
                print(f"{name}: writer={writer}", flush=True)
            log = tmp / f"{name.replace('/', '-')}.log"
            backend = name.split("/", 1)[0]
            proc, url, key = start_liveguard(db, log, args.log_level, writer, env_of.get(backend))
            try:
                load = {"shape": args.shape, "server_pid": proc.pid}
                hey("warmup", url, key, args.rate, 2, body, **load)
                metrics_url = url.replace("/v1/decisions", "/metrics")
                before = commit_histogram(metrics_url)
                results[name] = hey(name, url, key, args.rate, args.duration, body, **load)
                results[name].commits = commits_between(before, commit_histogram(metrics_url))
                print(results[name].line(), f"load_avg={os.getloadavg()[0]:.2f}", flush=True)
                print(f"{'':<13}{results[name].commits.line()}", flush=True)
                if not args.no_max and backend != "sqlite-normal":
                    maxes[name] = max_rate(name, url, key, body, steps, args.step_seconds, **load)
            finally:
                stop(proc)
    finally:
        if schema:
            with psycopg.connect(conninfo, autocommit=True) as c:
                c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        shutil.rmtree(tmp, ignore_errors=True)

    bare_run = results["bare"]
    lite = results.get("sqlite") or results.get("postgresql") or bare_run
    ratio = lite.p99_ms / bare_run.p99_ms if bare_run.p99_ms else float("nan")
    print(
        f"sqlite p99 {lite.p99_ms:.2f} ms vs bare {bare_run.p99_ms:.2f} ms ({ratio:.2f}x; "
        f"target ≤ {P99_TARGET_MS} ms and ≤ 1.5x)"
    )
    for name, (sustained, on_target) in maxes.items():
        print(
            f"{name}: max sustained {sustained}/s; max with p99 ≤ {P99_TARGET_MS} ms {on_target}/s"
        )
    line = (
        f"RESULT rate={lite.achieved:.0f} p99_ms={lite.p99_ms:.2f} "
        f"bare_p99_ms={bare_run.p99_ms:.2f} max_rps={maxes.get('sqlite', (0, 0))[0]}"
    )
    if lite.commits is not None:
        line += f" commits_over_10ms={lite.commits.over_10ms}"
    if "postgresql" in results:
        pg = results["postgresql"]
        line += (
            f" pg_rate={pg.achieved:.0f} pg_p99_ms={pg.p99_ms:.2f}"
            f" pg_max_rps={maxes.get('postgresql', (0, 0))[0]}"
        )
        if pg.commits is not None:
            line += f" pg_commits_over_10ms={pg.commits.over_10ms}"
    if "sqlite-normal" in results:
        normal = results["sqlite-normal"]
        print(
            f"sqlite-normal (no fsync per commit; not power-loss durable) p99 "
            f"{normal.p99_ms:.2f} ms: what the same service gives without the disk's flushes"
        )
        line += f" normal_p99_ms={normal.p99_ms:.2f}"
    print(line)


if __name__ == "__main__":
    main()
