"""Writing result files so that no reader ever sees half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_atomically(table: pa.Table, output: Path, **options: object) -> None:
    """Write to a temporary file beside ``output`` and rename: never a half-written file."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, **options)  # type: ignore[arg-type]
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
