"""How a policy's logic is evaluated: YAML closures, Rego (embedded engines, input
pruning, lint, the OPA evaluator as oracle, a remote OPA), the YAML→Rego export and
OPA bundles. Backends import the core and read folders through ``governance.folder``;
they never import the repository or the service."""
