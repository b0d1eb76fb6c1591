"""Bounded reading of the files a policy author controls (YAML and JSON).

Every policy file is read through here, by the engine and by governance alike, so one set
of bounds holds everywhere (``policy lint``, ``policy test``, ``governance check``,
``decide``, ``serve``):

* the file must be a regular file, not a symbolic link: a policy folder's content is what
  the repository holds, never what a link points at (``O_NOFOLLOW``);
* at most ``max_bytes`` (1 MiB): the size is checked on the open file before anything is
  read, so a 50 MB file is refused in microseconds;
* YAML is first walked as an event stream (libyaml's parser is iterative, so depth costs it
  nothing) counting the nodes the document would have with every alias expanded and its
  nesting depth, aliases included. A "billion laughs" anchor/alias bomb is refused at the
  ``max_nodes``-th expanded node, before any Python object is built; only a document within
  the bounds is then composed and constructed (the composer is recursive, hence the depth
  bound before it runs);
* JSON is parsed by the standard library, then its depth and node count are checked too.

Limits are fixed here (``LIMITS``): a policy that needs more than this is not a policy.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = ["LIMITS", "FileRefused", "ParseLimits", "load_json", "load_yaml", "read_bytes"]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class ParseLimits:
    #: Largest policy file, in bytes.
    max_bytes: int = 1024 * 1024
    #: Deepest nesting of mappings and sequences (aliases expanded).
    max_depth: int = 64
    #: Most nodes (scalars, mappings, sequences) in one document, every alias expanded.
    max_nodes: int = 100_000


LIMITS = ParseLimits()

Problem = Literal["missing", "unreadable", "symlink", "too_large", "invalid", "bounds"]


class FileRefused(Exception):
    """A policy file that is not read or not parsed; ``str()`` names the file and why."""

    def __init__(self, path: Path | str, kind: Problem, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.kind: Problem = kind
        self.reason = reason


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n:,} bytes"


def read_bytes(path: Path, limits: ParseLimits = LIMITS) -> bytes:
    """The file's bytes: a regular file, not a symlink, at most ``limits.max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileRefused(path, "missing", "file is missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            target = os.readlink(path) if os.path.islink(path) else "?"
            raise FileRefused(
                path,
                "symlink",
                f"is a symbolic link (to {target}); policy files must be regular files in "
                "the policy folder",
            ) from None
        raise FileRefused(path, "unreadable", f"cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(path, "unreadable", "is not a regular file")
        if st.st_size > limits.max_bytes:
            raise FileRefused(
                path,
                "too_large",
                f"is {_size(st.st_size)}; policy files may be at most "
                f"{_size(limits.max_bytes)} ({limits.max_bytes:,} bytes)",
            )
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            # Read one byte past the cap: a file that grew after fstat is still refused.
            data = fh.read(limits.max_bytes + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limits.max_bytes:
        raise FileRefused(
            path, "too_large", f"is larger than {_size(limits.max_bytes)}, the policy file limit"
        )
    return data


def read_text(path: Path, limits: ParseLimits = LIMITS) -> str:
    try:
        return read_bytes(path, limits).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(path, "unreadable", f"cannot be read ({exc})") from None


def _check_yaml_events(text: str, path: Path | str, limits: ParseLimits) -> None:
    """Refuse a document whose alias-expanded size or depth passes the limits, early."""
    # Per open collection: [expanded node count, subtree height, anchor].
    stack: list[list[Any]] = []
    #: anchor → (expanded node count, height) of a completed node.
    anchors: dict[str, tuple[int, int]] = {}
    total = 0

    def grow(count: int) -> None:
        nonlocal total
        total += count
        if total > limits.max_nodes:
            raise FileRefused(
                path,
                "bounds",
                f"YAML expands to more than {limits.max_nodes:,} nodes (anchors and aliases "
                "counted expanded); refused (an alias bomb, or far too much for a policy)",
            )

    def attach(count: int, height: int) -> None:
        if len(stack) + height > limits.max_depth:
            raise FileRefused(
                path,
                "bounds",
                f"YAML nests deeper than {limits.max_depth} levels (aliases expanded)",
            )
        if stack:
            stack[-1][0] += count
            stack[-1][1] = max(stack[-1][1], height)

    for ev in yaml.parse(text, Loader=_Loader):
        if isinstance(ev, yaml.ScalarEvent):
            grow(1)
            attach(1, 1)
            if ev.anchor:
                anchors[ev.anchor] = (1, 1)
        elif isinstance(ev, yaml.AliasEvent):
            got = anchors.get(ev.anchor) if ev.anchor else None
            if got is None:
                line = ev.start_mark.line + 1 if ev.start_mark else "?"
                raise FileRefused(
                    path,
                    "invalid",
                    f"line {line}: invalid YAML (alias *{ev.anchor} is undefined or refers to "
                    "the node that contains it)",
                )
            grow(got[0])
            attach(*got)
        elif isinstance(ev, yaml.CollectionStartEvent):
            if len(stack) + 1 > limits.max_depth:
                raise FileRefused(
                    path, "bounds", f"YAML nests deeper than {limits.max_depth} levels"
                )
            grow(1)
            stack.append([1, 0, ev.anchor])
        elif isinstance(ev, yaml.CollectionEndEvent):
            count, height, anchor = stack.pop()
            attach(count, height + 1)
            if anchor:
                anchors[anchor] = (count, height + 1)


def _yaml_error(path: Path | str, exc: yaml.YAMLError) -> FileRefused:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return FileRefused(path, "invalid", f"{where}invalid YAML ({reason})")


def load_yaml(path: Path, limits: ParseLimits = LIMITS) -> Any:
    """One YAML document from a policy file, within the bounds (``FileRefused`` if not)."""
    text = read_text(path, limits)
    try:
        _check_yaml_events(text, path, limits)
        return yaml.load(text, Loader=_Loader)  # a safe loader; bounded above
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None


def _check_tree(value: Any, path: Path | str, limits: ParseLimits) -> None:
    nodes = 0
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise FileRefused(path, "bounds", f"JSON has more than {limits.max_nodes:,} nodes")
        if depth > limits.max_depth:
            raise FileRefused(path, "bounds", f"JSON nests deeper than {limits.max_depth} levels")
        if isinstance(item, dict):
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, depth + 1) for v in item)


def load_json(path: Path, limits: ParseLimits = LIMITS) -> Any:
    """One JSON document from a policy file, within the bounds (``FileRefused`` if not)."""
    text = read_text(path, limits)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileRefused(path, "invalid", f"line {exc.lineno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise FileRefused(
            path, "bounds", f"JSON nests deeper than {limits.max_depth} levels"
        ) from None
    _check_tree(value, path, limits)
    return value
