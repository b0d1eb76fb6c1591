"""A Rego evaluation in a worker process that can be killed when it overruns its budget.

rego-cpp has no way to interrupt an evaluation, and a rule's cost can depend on the input
(``numbers.range(1, input.x)`` squared): in-process, a runaway keeps its thread and a CPU
core until it finishes, which can be hours. The service therefore evaluates each Rego policy
in its own child process (``RegoWorker``), one evaluation at a time, over a pipe:

* the parent waits for the answer with a deadline (``poll``); past ``kill_after_s`` the
  child is killed (SIGKILL) and a fresh one is started, so a runaway costs at most that
  long of one core;
* a fresh child compiles the bundle before it says it is ready; until then evaluations are
  refused with ``policy_eval_timeout`` (the caller gets the policy's fail_mode), never
  queued behind the compilation;
* the child reads frames until its stdin closes: it never outlives the service.

Frames are a 4-byte little-endian length and a JSON document; the child answers with one
status byte (``1`` ok, ``0`` error) and a framed text (the engine's output or its error).

The job names the engine (``regopy``, or ``regorus`` with ``vm`` true for its bytecode VM,
false for its Engine); a regorus child never imports regopy, and answers the decision as
JSON text, or status ``0`` for an error, a panic or an undefined decision (fail-safe: the
parent turns every ``0`` into ``policy_eval_error``).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import threading
from time import monotonic
from typing import Any, Literal

from engine.core.errors import PolicyEvalError, PolicyEvalTimeout

_HEADER = struct.Struct("<I")
_WHERE = re.compile(r"-->\s*(?P<file>[^\s:]+):(?P<line>\d+):(?P<col>\d+)")
_ERROR = re.compile(r"^error:\s*(?P<msg>.+)$", re.MULTILINE)


def describe(error: BaseException | str) -> str:
    """A regorus error as one line, ``file:line:col: message`` (its text has a backtrace)."""
    text = str(error)
    where, msg = _WHERE.search(text), _ERROR.search(text)
    head = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    message = msg.group("msg").strip() if msg else head
    if where:
        return f"{where['file']}:{where['line']}:{where['col']}: {message}"
    return message[:300]


#: Both children's framing: a 4-byte little-endian length before every message; answers
#: are a status byte (1 ok, 0 failed), the length, the text. The first message is the job.
_FRAMING = r"""
import json, struct, sys
H = struct.Struct("<I")
src, dst = sys.stdin.buffer, sys.stdout.buffer
def read():
    head = src.read(4)
    if len(head) < 4:
        sys.exit(0)
    return src.read(H.unpack(head)[0])
def write(status, text):
    body = text.encode()
    dst.write(bytes([status]) + H.pack(len(body)) + body)
    dst.flush()
job = json.loads(read())
"""

#: The child: compile once, then evaluate input documents until stdin closes.
_CHILD = (
    _FRAMING
    + r"""
import regopy  # before anything that loads numpy: see engine.backends.rego.embedded
from regopy import Input, Interpreter, LogLevel
from regopy import rego_shared as rs
rego = Interpreter()
rego.log_level = LogLevel.NONE
rego.strict_built_in_errors = True
for name, source in job["modules"].items():
    rego.add_module(name, source)
rego.add_data(job["data"])
bundle = rego.build(None, [job["entrypoint"]])
entry = job["entrypoint"]
dst.write(b"R")
dst.flush()
while True:
    doc = json.loads(read())
    rego.set_input(Input(doc))
    out = rs.rego_bundle_query_entrypoint(rego._impl, bundle._impl, entry)
    try:
        ok = rs.rego_output_ok(out)
        text = rs.rego_output_string(out)
    finally:
        rs.rego_free_output(out)
    write(1 if ok else 0, text)
"""
)


#: The regorus child: same framing; the decision as JSON text, every failure as status 0.
_CHILD_REGORUS = (
    _FRAMING
    + r"""
import regorus
modules, data, rule = job["modules"], job["data"], "data." + job["entrypoint"].replace("/", ".")
if job["vm"]:
    program = regorus.Program.compile_from_modules(json.dumps(data), list(modules.items()), [rule])
    vm = regorus.Rvm()
    vm.load_program(program)
    vm.set_data_json(json.dumps(data))
engine = regorus.Engine()
engine.set_gather_prints(True)  # print() would write into the answer pipe (fd 1)
for name, source in modules.items():
    engine.add_policy(name, source)
engine.add_data(data)
dst.write(b"R")
dst.flush()
while True:
    doc = read().decode()
    try:
        text = None
        if job["vm"]:
            vm.set_input_json(doc)
            try:
                text = str(vm.execute())
            except RuntimeError as exc:  # past the VM's instruction limit: on in the Engine
                if "exceeded maximum instruction limit" not in str(exc):
                    raise
        if text is None:
            engine.set_input_json(doc)
            try:
                text = str(engine.eval_rule_as_json(rule))
            finally:
                engine.take_prints()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # RuntimeError, or a Rust panic
        write(0, str(exc))
        continue
    if text.strip() == '"<undefined>"':
        write(0, rule + " is undefined for this input")
    else:
        write(1, text)
"""
)


class RegoWorker:
    """One Rego bundle evaluated in a killable child process, one evaluation at a time."""

    def __init__(
        self,
        modules: dict[str, str],
        data: dict[str, Any],
        entrypoint: str,
        *,
        label: str,
        engine: Literal["regopy", "regorus"] = "regopy",
        vm: bool = False,
    ) -> None:
        self._job = json.dumps(
            {"modules": modules, "data": data, "entrypoint": entrypoint, "vm": vm}
        )
        self.label = label
        self.engine = engine
        self._script = _CHILD_REGORUS if engine == "regorus" else _CHILD
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._lock = threading.Lock()
        #: Children killed for overrunning (for logs and tests).
        self.kills = 0

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start a child (compiling in the background); returns at once."""
        self._proc = subprocess.Popen(
            [sys.executable, "-c", self._script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            bufsize=0,  # raw pipes: poll() on the descriptor sees every byte not yet read
        )
        self._ready = False
        self._send(self._job.encode())

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until the child has compiled the bundle (or ``timeout_s`` passed)."""
        if self._ready:
            return True
        proc = self._proc
        if proc is None or not self._readable(timeout_s):
            return False
        if self._read_exact(1) != b"R":
            self._kill()
            raise PolicyEvalError(f"rego worker for {self.label} failed to compile the bundle")
        self._ready = True
        return True

    def close(self) -> None:
        with self._lock:
            self._kill()

    def _kill(self) -> None:
        proc, self._proc, self._ready = self._proc, None, False
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    # --- evaluation --------------------------------------------------------------------

    def evaluate_text(self, doc: dict[str, Any], *, timeout_s: float, kill_after_s: float) -> str:
        """The engine's output text for ``doc``.

        No answer within ``timeout_s`` is a ``PolicyEvalTimeout``; the child is given until
        ``kill_after_s`` (≥ ``timeout_s``) to finish, then killed and replaced, so a
        runaway evaluation never holds a core longer than that.
        """
        started = monotonic()
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._kill()
                self.start()
            remaining = timeout_s - (monotonic() - started)
            if not self.wait_ready(max(0.0, remaining)):
                raise PolicyEvalTimeout(
                    f"the Rego worker of {self.label} is still starting (after a restart)"
                )
            self._send(json.dumps(doc).encode())
            answered = self._readable(max(0.0, kill_after_s - (monotonic() - started)))
            if not answered:
                self.kills += 1
                self._kill()
                self.start()  # compiles while the next requests are refused, not queued
                raise PolicyEvalTimeout(
                    f"evaluation did not finish in {kill_after_s * 1000:.0f} ms; the worker "
                    "was stopped"
                )
            status, text = self._receive()
        if monotonic() - started > timeout_s:
            raise PolicyEvalTimeout(
                f"evaluation took {(monotonic() - started) * 1000:.1f} ms; the policy's "
                f"budget is {timeout_s * 1000:g} ms (eval_budget_ms)"
            )
        if not status:
            if self.engine == "regorus":
                raise PolicyEvalError(f"regorus: {describe(text)}")
            raise PolicyEvalError(f"rego-cpp: {text.strip()[:300]}")
        return text

    def _send(self, body: bytes) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            view = memoryview(_HEADER.pack(len(body)) + body)
            while view:
                view = view[proc.stdin.write(view) or 0 :]
        except (BrokenPipeError, OSError):
            self._kill()
            raise PolicyEvalError(f"the Rego worker of {self.label} exited") from None

    def _readable(self, timeout_s: float) -> bool:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        poller = select.poll()
        poller.register(proc.stdout.fileno(), select.POLLIN | select.POLLHUP)
        return bool(poller.poll(timeout_s * 1000))

    def _read_exact(self, n: int) -> bytes:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        out = b""
        while len(out) < n:
            chunk = proc.stdout.read(n - len(out))
            if not chunk:
                self._kill()
                raise PolicyEvalError(f"the Rego worker of {self.label} exited")
            out += chunk
        return out

    def _receive(self) -> tuple[bool, str]:
        head = self._read_exact(1 + _HEADER.size)
        (size,) = _HEADER.unpack(head[1:])
        return head[0] == 1, self._read_exact(size).decode()
