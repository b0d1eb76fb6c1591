"""Reading compact feature series (e.g. a mouth-openness track) from CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

TIME_COLUMNS = {
    "t_ms": 1.0,
    "time_ms": 1.0,
    "ms": 1.0,
    "t": 1000.0,
    "time_s": 1000.0,
    "time": 1000.0,
    "seconds": 1000.0,
}


class SeriesInputError(ValueError):
    code = "series_invalid"


def read_series_csv(
    path: str | Path, value_column: str = "mouth_openness"
) -> tuple[np.ndarray, np.ndarray]:
    """(times_ms, values) from a CSV with a time column (t_ms, time_ms, time_s, t) and a value
    column (`value_column`, else the second column)."""
    p = Path(path)
    try:
        with p.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise SeriesInputError(f"cannot read series {p}: {exc}") from None
    if len(rows) < 2:
        raise SeriesInputError(f"series {p} is empty")
    header = [h.strip().lower() for h in rows[0]]
    tcol = next((i for i, h in enumerate(header) if h in TIME_COLUMNS), None)
    if tcol is None:
        raise SeriesInputError(f"series {p}: no time column (one of {sorted(TIME_COLUMNS)})")
    vcol = header.index(value_column) if value_column in header else (1 if tcol == 0 else 0)
    try:
        data = np.array([[float(r[tcol]), float(r[vcol])] for r in rows[1:] if r], dtype=np.float64)
    except (ValueError, IndexError):
        raise SeriesInputError(f"series {p}: non-numeric or missing values") from None
    if len(data) == 0 or not np.isfinite(data).all():
        raise SeriesInputError(f"series {p}: no finite values")
    order = np.argsort(data[:, 0], kind="stable")
    return data[order, 0] * TIME_COLUMNS[header[tcol]], data[order, 1]
