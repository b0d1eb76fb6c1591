"""A policy folder on disk: what it may hold, its digest, and its YAML files read into
models within the parse bounds (``governance.files``).

Used by the engine to load policies and by governance to check them; nothing here
evaluates anything.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from governance.errors import format_validation_error
from governance.files import LIMITS as FILE_LIMITS
from governance.files import FileRefused, load_yaml

MANIFEST = "manifest.yaml"

#: Most files (and folders) one policy folder may hold.
MAX_FOLDER_ENTRIES = 256


def folder_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, in path order.

    Only what the folder itself holds counts: a symlink contributes its link text (what Git
    stores), never the bytes it points at (a folder with one does not load anyway).
    """
    h = hashlib.sha256()
    for path in sorted(_policy_files(folder)):
        rel = path.relative_to(folder).as_posix()
        h.update(rel.encode())
        h.update(b"\0")
        if path.is_symlink():
            h.update(b"symlink:" + os.fsencode(os.readlink(path)))
        else:
            h.update(path.read_bytes())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def _entries(folder: Path) -> Iterable[Path]:
    """Every entry below ``folder`` (hidden ones and caches aside), never following links."""
    todo = [folder]
    while todo:
        current = todo.pop()
        with os.scandir(current) as it:
            for entry in it:
                if entry.name.startswith(".") or entry.name == "__pycache__":
                    continue
                path = Path(entry.path)
                yield path
                if entry.is_dir(follow_symlinks=False):
                    todo.append(path)


def _policy_files(folder: Path) -> Iterable[Path]:
    for path in _entries(folder):
        if path.is_symlink() or path.is_file():
            yield path


def folder_problems(folder: Path) -> list[str]:
    """What makes a folder unfit before any file is parsed: symlinks, oversized files.

    Symlinks are refused outright (not resolved and checked): a policy version must be the
    bytes the repository holds, so review, the digest and ``git archive`` all see one thing.
    """
    problems: list[str] = []
    if folder.is_symlink():
        problems.append(
            f"{folder}: is a symbolic link (to {os.readlink(folder)}); a policy folder must "
            "be a real folder in the policy repository"
        )
        return problems
    for count, path in enumerate(_entries(folder), start=1):
        if count > MAX_FOLDER_ENTRIES:
            problems.append(f"{folder}: holds more than {MAX_FOLDER_ENTRIES} files and folders")
            break
        if path.is_symlink():
            problems.append(
                f"{path}: is a symbolic link (to {os.readlink(path)}); policy folders may "
                "not contain symlinks: put the file itself in the folder"
            )
        elif path.is_file():
            size = path.stat().st_size
            if size > FILE_LIMITS.max_bytes:
                problems.append(
                    f"{path}: is {size:,} bytes; policy files may be at most "
                    f"{FILE_LIMITS.max_bytes:,} bytes (1 MiB)"
                )
    return problems


def read_yaml(path: Path, problems: list[str]) -> Any:
    """Parse one YAML file within the parse bounds (``governance.files``); a problem
    (``file: line N: …``, a symlink, a file past the size cap, an alias bomb) is appended."""
    try:
        data = load_yaml(path)
    except FileRefused as exc:
        problems.append(str(exc))
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a mapping at the top level")
        return None
    return data


def validate_file(model: type[BaseModel], path: Path, problems: list[str]) -> Any:
    data = read_yaml(path, problems)
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(format_validation_error(str(path), exc))
        return None
