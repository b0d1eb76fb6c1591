"""rego-cpp handles freed quietly even when regopy's module globals are gone (interpreter
exit): engine.backends.rego.teardown."""

from __future__ import annotations

import sys

from regopy import Interpreter
from regopy import interpreter as regopy_interpreter

import engine.backends.rego.embedded  # noqa: F401 - installs the destructors


def test_a_handle_is_freed_after_regopys_global_is_cleared(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rego = Interpreter()
    monkeypatch.setattr(regopy_interpreter, "rego_free", None)  # as at interpreter exit
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    del rego
    assert unraisable == []
