"""Group commit in a writer process: the serving process keeps its CPU and its GIL.

The event loop collects the write sets handed over during one pass and sends them to the
writer process in one framed write on a Unix socketpair. The writer process commits what
has queued up (one transaction per burst, rows retried singly when a batch fails: the
same ``GroupCommitWriter.commit_batch`` the writer thread uses) and answers each
transaction with one acknowledgement listing the committed and the failed ids; the loop
resolves exactly those requests. Nothing is answered before its commit.

The writer exits when its socket reaches end-of-file: the serving process closed it
(clean shutdown, after every queued write set is committed and acknowledged) or died
(kill -9: the kernel closes the socket; nothing unacknowledged needed committing, and the
writer does not outlive its parent). It also watches its parent id, in case the socket
were ever inherited by another process.

Frames both ways: a 4-byte big-endian length, then a pickle. The first frame to the
writer is its configuration (the database URL travels here, never on a command line).

Over ~400 lines on purpose: both ends of one wire protocol (the loop's side and the
writer's) are kept in one module so a framing change cannot land on one side only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import structlog

from engine.store.db import StoreUnavailable
from engine.store.writer import CommitObserver, WriteSet

log = structlog.get_logger("liveguard.store")

_LEN = struct.Struct(">I")
_RECV = 1 << 16
_ROOT = Path(__file__).resolve().parent.parent.parent
#: Item sent per write set: (seq, event row, review row | None, shadow row | None).
_Item = tuple[int, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]


def _frame(obj: Any) -> bytes:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(payload)) + payload


def _frames(buf: bytearray) -> list[Any]:
    """Complete frames at the head of ``buf`` (consumed), unpickled."""
    out = []
    pos = 0
    while len(buf) - pos >= 4:
        (n,) = _LEN.unpack_from(buf, pos)
        if len(buf) - pos - 4 < n:
            break
        out.append(pickle.loads(memoryview(buf)[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    if pos:
        del buf[:pos]
    return out


class ProcessCommitWriter:
    """The ``GroupCommitWriter`` interface the runtime uses, with the commits elsewhere."""

    def __init__(
        self,
        database_url: str,
        *,
        sqlite_synchronous: str = "full",
        batch_max: int = 256,
        observe: CommitObserver | None = None,
        log_format: str = "auto",
        log_level: str = "INFO",
    ) -> None:
        self._url = database_url
        self._synchronous = sqlite_synchronous
        self._logging = (log_format, log_level)
        self._batch_max = batch_max
        self._observe = observe
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._dead = False
        self._seq = 0
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._outbox: list[_Item] = []
        self._flush_scheduled = False
        self._unsent = bytearray()
        self._inbox = bytearray()
        self._eof: asyncio.Event | None = None
        self._lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._proc is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        code = (
            f"import sys; sys.path.insert(0, {str(_ROOT)!r}); "
            "from engine.store.writer_process import main; main()"
        )
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        ours.sendall(
            _frame(
                {
                    "url": self._url,
                    "synchronous": self._synchronous,
                    "batch_max": self._batch_max,
                    "logging": self._logging,
                }
            )
        )
        # The writer answers once it is connected (or says why it cannot be).
        ours.settimeout(60)
        hello = bytearray()
        while not (got := _frames(hello)):
            chunk = ours.recv(65536)
            if not chunk:
                self._proc.wait(10)
                raise StoreUnavailable("the decision log writer did not start")
            hello += chunk
        if got[0] != "ready":
            raise StoreUnavailable(f"the decision log writer did not start: {got[0]}")
        ours.setblocking(False)
        self._sock = ours

    @property
    def alive(self) -> bool:
        return (
            self._proc is not None
            and self._proc.poll() is None
            and not self._closed
            and not self._dead
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued (and acknowledge it), then stop the writer process."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        loop = self._loop
        on_loop = False
        with contextlib.suppress(RuntimeError):
            on_loop = asyncio.get_running_loop() is loop
        if loop is not None and loop.is_running() and not on_loop:
            fut = asyncio.run_coroutine_threadsafe(self._drain(), loop)
            with contextlib.suppress(Exception):
                fut.result(timeout)
        else:
            self._drain_sync(timeout)
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._sock is not None:
            self._sock.close()
        self._fail_all("the decision log is not running")

    async def _drain(self) -> None:
        self._flush()
        if self._sock is not None and not self._dead:
            with contextlib.suppress(OSError):
                if not self._unsent:
                    self._sock.shutdown(socket.SHUT_WR)
            if self._eof is not None:
                await self._eof.wait()
        self._detach()

    def _drain_sync(self, timeout: float) -> None:
        """Stop from outside a running loop (or on it): blocking send, blocking acks."""
        self._detach()
        sock = self._sock
        if sock is None or self._dead:
            return
        self._flush_scheduled = False
        data = bytes(self._unsent) + (_frame(self._outbox) if self._outbox else b"")
        self._outbox, self._unsent = [], bytearray()
        sock.settimeout(timeout)
        try:
            if data:
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(1 << 16):
                self._inbox += chunk
                for ack in _frames(self._inbox):
                    self._acknowledge(ack)
        except OSError:
            pass
        self._dead = True

    def _detach(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed() and self._sock is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(self._sock.fileno())
                loop.remove_writer(self._sock.fileno())

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        old = self._loop
        if old is not None and not old.is_closed():
            if old.is_running():
                raise StoreUnavailable("the decision log is bound to another event loop")
            self._detach()
        # Write sets queued on a loop that is gone can never be answered.
        self._waiters.clear()
        self._outbox.clear()
        self._flush_scheduled = False
        assert self._sock is not None
        self._loop = loop
        self._eof = asyncio.Event()
        loop.add_reader(self._sock.fileno(), self._on_readable)

    # --- the serving side (event loop thread) --------------------------------------------

    async def write(self, ws: WriteSet) -> None:
        """Return once ``ws`` is committed (raise ``StoreUnavailable`` if it cannot be)."""
        if self._closed or self._dead or self._sock is None:
            raise StoreUnavailable("the decision log is not running")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._attach(loop)
        self._seq += 1
        seq = self._seq
        waiter = ws.waiter = loop.create_future()
        self._waiters[seq] = waiter
        self._outbox.append((seq, ws.event, ws.review, ws.shadow))
        if not self._flush_scheduled:
            # Runs after everything already ready in this pass: one write per pass.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        try:
            await waiter
        finally:
            self._waiters.pop(seq, None)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._outbox:
            self._unsent += _frame(self._outbox)
            self._outbox = []
        self._send()

    def _send(self) -> None:
        if not self._unsent or self._sock is None or self._dead:
            return
        try:
            n = self._sock.send(self._unsent)
        except BlockingIOError:
            n = 0
        except OSError:
            self._lost()
            return
        del self._unsent[:n]
        if self._unsent and self._loop is not None:
            self._loop.add_writer(self._sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        assert self._sock is not None and self._loop is not None
        self._loop.remove_writer(self._sock.fileno())
        self._send()
        if not self._unsent and self._closed:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def _on_readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                chunk = self._sock.recv(_RECV)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                for ack in _frames(self._inbox):
                    self._acknowledge(ack)
                self._lost()
                return
            self._inbox += chunk
            if len(chunk) < _RECV:
                break  # drained: no second recv just to hear "would block"
        for ack in _frames(self._inbox):
            self._acknowledge(ack)

    def _acknowledge(self, ack: tuple[list[int], list[tuple[int, str]], list[Any]]) -> None:
        committed, failed, commits = ack
        waiters = self._waiters
        for seq in committed:
            w = waiters.pop(seq, None)
            if w is not None and not w.done():
                w.set_result(None)
        for seq, why in failed:
            w = waiters.pop(seq, None)
            if w is not None and not w.done():
                w.set_exception(StoreUnavailable(why))
        if self._observe is not None:
            for n, seconds in commits:
                self._observe(n, seconds)

    def _lost(self) -> None:
        """The writer process is gone: nothing pending can be acknowledged any more."""
        if not self._dead:
            self._dead = True
            if not self._closed:
                log.error("store.writer_process_lost")
        if self._loop is not None and self._sock is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
                self._loop.remove_writer(self._sock.fileno())
        self._fail_all("the decision log writer stopped")
        if self._eof is not None:
            self._eof.set()

    def _fail_all(self, why: str) -> None:
        waiters, self._waiters = self._waiters, {}
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for w in waiters.values():
            wl = w.get_loop()
            if w.done() or wl.is_closed():
                continue
            if wl.is_running() and wl is not current:
                wl.call_soon_threadsafe(_fail, w, why)
            else:
                _fail(w, why)


def _fail(w: asyncio.Future[None], why: str) -> None:
    if not w.done():
        w.set_exception(StoreUnavailable(why))


# --- the writer process --------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    """Exit if the serving process is gone, even if the socket somehow stays open."""
    import time

    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)


def main() -> None:
    import signal

    # Ctrl-C reaches the whole process group: the serving process decides when we stop
    # (it closes the socket once everything queued is committed).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.setblocking(True)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    inbox = bytearray()
    config = None
    while config is None:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return
        inbox += chunk
        got = _frames(inbox)
        if got:
            config = got[0]
    from engine.store.db import make_engine
    from engine.store.writer import GroupCommitWriter
    from engine.telemetry import configure_logging

    configure_logging(*config["logging"])

    commits: list[tuple[int, float]] = []
    try:
        engine = make_engine(config["url"], sqlite_synchronous=config["synchronous"])
        with engine.connect():
            pass
        writer = GroupCommitWriter(
            engine, batch_max=config["batch_max"], observe=lambda n, s: commits.append((n, s))
        )
        writer.start_checkpointer()
    except Exception as exc:
        sock.sendall(_frame(f"{type(exc).__name__}: {str(exc)[:300]}"))
        return
    sock.sendall(_frame("ready"))
    batch_max = config["batch_max"]
    eof = False
    try:
        while not eof:
            chunk = sock.recv(1 << 20)
            if not chunk:
                eof = True
            else:
                inbox += chunk
                # Everything that queued while we were committing joins this burst.
                while len(chunk) == 1 << 20:
                    try:
                        chunk = sock.recv(1 << 20, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    if not chunk:
                        eof = True
                        break
                    inbox += chunk
            items: list[_Item] = [it for frame in _frames(inbox) for it in frame]
            for i in range(0, len(items), batch_max):
                part = items[i : i + batch_max]
                batch = [WriteSet(event=e, review=r, shadow=s) for _, e, r, s in part]
                failed = writer.commit_batch(batch)
                bad = {id(ws): str(exc) for ws, exc in failed}
                ok = [seq for (seq, *_), ws in zip(part, batch, strict=True) if id(ws) not in bad]
                nok = [
                    (seq, bad[id(ws)])
                    for (seq, *_), ws in zip(part, batch, strict=True)
                    if id(ws) in bad
                ]
                done, commits[:] = list(commits), []
                try:
                    sock.sendall(_frame((ok, nok, done)))
                except OSError:
                    eof = True  # the serving process is gone: nobody to answer
                    break
    finally:
        writer.stop()
        engine.dispose()
        with contextlib.suppress(OSError):
            sock.close()
