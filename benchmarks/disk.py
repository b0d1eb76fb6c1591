"""How long this disk takes to flush, under the decision log's write pattern, without the service.

Run by hand: ``.venv/bin/python benchmarks/disk.py [--dir DIR] [--seconds 30]``.

With ``LIVEGUARD_SQLITE_SYNCHRONOUS=full`` every decision is answered only after the
write-ahead log is flushed, so the disk's flush latency sits under every answer, and one
slow flush holds back every decision that arrives meanwhile. This probe reproduces the
pattern ``benchmarks/http.py`` puts on the disk at 1,000 decisions/s: a group commit every
10 ms (about 170 KB appended to a WAL-like file, then ``fdatasync``), first alone (the
baseline), then beside checkpoint-like writes (about 850 KB of scattered 4 KiB pages, then
``fsync``, every 50 ms). It reports the WAL flushes' median, p99, maximum and how many took
over 10, 20 and 50 ms. No Python service runs meanwhile: what it shows is the disk's.

Files go to ``--dir`` (default: a temporary folder under the current directory, so the disk
measured is the one the default SQLite database lives on) and are removed at the end. Ends
with one line: ``RESULT fsync_p50_ms=… fsync_p99_ms=… fsync_max_ms=… over_10ms_per_min=…
held_over_10ms_pct=…`` (from the run with checkpoint-like writes). ``held_over_10ms_pct``
is the share of a steady load's decisions that the flushes alone would hold over 10 ms:
above 1%, no service that answers after the flush can keep p99 at 10 ms on this disk.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: What one group commit appends at 1,000 decisions/s (10 decisions x ~17 KB of WAL each).
COMMIT_BYTES = 170 * 1024
COMMIT_EVERY_S = 0.010
#: What one background checkpoint writes back (scattered pages), and how often.
CHECKPOINT_PAGES = 210
CHECKPOINT_EVERY_S = 0.050
WAL_SPAN = 4 << 20
DB_SIZE = 64 << 20


@dataclass
class Flushes:
    name: str
    seconds: float
    ms: list[float]

    def pct(self, p: float) -> float:
        return self.ms[min(len(self.ms) - 1, int(len(self.ms) * p))]

    def over(self, limit_ms: float) -> int:
        return sum(1 for x in self.ms if x > limit_ms)

    def held_over(self, limit_ms: float) -> float:
        """Share of decisions a steady load would see held over ``limit_ms`` by flushes alone.

        A decision that arrives during a flush waits for it; one arriving in the first
        ``s - limit_ms`` ms of a flush of ``s`` ms waits longer than ``limit_ms``. Whatever
        the rate, that is the stalls' excess time over the run's length (an under-estimate:
        it ignores the work queued behind a stall).
        """
        return sum(max(0.0, x - limit_ms) for x in self.ms) / (self.seconds * 1000)

    def line(self) -> str:
        return (
            f"{self.name:<22} n={len(self.ms):>5} p50={self.pct(0.5):6.2f}ms "
            f"p99={self.pct(0.99):6.2f}ms max={self.ms[-1]:7.1f}ms "
            f">10ms={self.over(10)} >20ms={self.over(20)} >50ms={self.over(50)} "
            f"held>10ms={self.held_over(10):.2%}"
        )


def probe(folder: Path, seconds: float, *, checkpoints: bool, name: str) -> Flushes:
    wal = os.open(folder / "probe-wal", os.O_RDWR | os.O_CREAT, 0o600)
    db = os.open(folder / "probe-db", os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(db, DB_SIZE)
    deadline = time.monotonic() + seconds

    def checkpointer() -> None:
        page = os.urandom(4096)
        while time.monotonic() < deadline:
            for _ in range(CHECKPOINT_PAGES):
                os.pwrite(db, page, random.randrange(DB_SIZE // 4096) * 4096)
            os.fsync(db)
            time.sleep(CHECKPOINT_EVERY_S)

    worker = threading.Thread(target=checkpointer, daemon=True) if checkpoints else None
    if worker is not None:
        worker.start()
    chunk = os.urandom(COMMIT_BYTES)
    offset = 0
    ms: list[float] = []
    try:
        while time.monotonic() < deadline:
            os.pwrite(wal, chunk, offset)
            offset = (offset + COMMIT_BYTES) % WAL_SPAN
            started = time.perf_counter()
            os.fdatasync(wal)
            ms.append((time.perf_counter() - started) * 1000)
            time.sleep(COMMIT_EVERY_S)
    finally:
        if worker is not None:
            worker.join()
        os.close(wal)
        os.close(db)
    ms.sort()
    return Flushes(name, seconds, ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("."), help="where the disk is probed")
    ap.add_argument("--seconds", type=float, default=30.0, help="per run (max 300)")
    args = ap.parse_args()
    seconds = min(max(args.seconds, 1.0), 300.0)
    folder = Path(tempfile.mkdtemp(prefix="lg-disk-", dir=args.dir))
    try:
        print(f"disk under {folder.resolve()} for {seconds:.0f}s per run")
        alone = probe(folder, seconds, checkpoints=False, name="commits alone")
        print(alone.line(), flush=True)
        mixed = probe(folder, seconds, checkpoints=True, name="commits + checkpoints")
        print(mixed.line(), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ratio = mixed.pct(0.99) / alone.pct(0.99) if alone.pct(0.99) else float("nan")
    per_min = mixed.over(10) * 60 / seconds
    print(f"p99 with checkpoints / alone: {ratio:.2f}x")
    print(
        f"flushes alone hold {mixed.held_over(10):.2%} of a steady load's decisions over 10 ms "
        "(over 1% makes p99 > 10 ms unavoidable for answers that wait for the flush)"
    )
    print(
        f"RESULT fsync_p50_ms={mixed.pct(0.5):.2f} fsync_p99_ms={mixed.pct(0.99):.2f} "
        f"fsync_max_ms={mixed.ms[-1]:.1f} over_10ms_per_min={per_min:.1f} "
        f"held_over_10ms_pct={mixed.held_over(10) * 100:.2f} "
        f"alone_p99_ms={alone.pct(0.99):.2f} alone_max_ms={alone.ms[-1]:.1f}"
    )


if __name__ == "__main__":
    main()
