"""Simulations and backtests: policies evaluated over many sessions at once."""

from simulations.vectorized import (
    SEVERITY,
    Batch,
    BatchResult,
    VectorizedPolicy,
    batch_from_requests,
)

__all__ = ["SEVERITY", "Batch", "BatchResult", "VectorizedPolicy", "batch_from_requests"]
