"""Rego modules shipped with the engine (package data): the generic YAML-policy evaluator."""
