"""The decision service's composition root (``runtime``), the shadow runner and telemetry.
The HTTP edge is ``engine.api``, the decision log ``engine.store``."""
