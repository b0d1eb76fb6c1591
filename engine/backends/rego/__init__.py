"""Rego policies: the decision document, the input, compilation and embedded evaluation,
plan-based input pruning, lint, and the per-policy worker for time-bounded evaluation."""
