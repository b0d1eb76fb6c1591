"""OPA itself: its Go evaluator in-process (the test oracle) and a remote OPA fleet."""
