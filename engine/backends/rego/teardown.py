"""Quiet destructors for regopy's rego-cpp handles.

regopy's ``__del__`` methods look their free functions up in module globals, and Python
clears module globals at interpreter exit before the last objects are collected: every
rego-cpp handle still alive then printed "Exception ignored in ... __del__ ...: 'NoneType'
object is not callable" (four at the end of every test run). The destructors are rebound
here to the same free functions held directly, so they make the same calls in the same
order and still work when the module is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regopy import interpreter as _interpreter
from regopy import output as _output


def _destructor(free: Callable[[Any], Any]) -> Callable[[Any], None]:
    def __del__(self: Any) -> None:
        impl = getattr(self, "_impl", None)  # a failed __init__ leaves nothing to free
        if impl is not None:
            free(impl)

    return __del__


def install() -> None:
    _interpreter.Bundle.__del__ = _destructor(_interpreter.rego_free_bundle)  # type: ignore[method-assign]
    _interpreter.Input.__del__ = _destructor(_interpreter.rego_free_input)  # type: ignore[method-assign]
    _interpreter.Interpreter.__del__ = _destructor(_interpreter.rego_free)  # type: ignore[method-assign]
    _output.Output.__del__ = _destructor(_output.rego_free_output)  # type: ignore[method-assign]
