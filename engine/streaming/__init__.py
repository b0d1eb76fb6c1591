"""Live sessions: calls streamed in over WebSocket protocols, decided hop by hop.

An edge of the engine, like ``engine.api``: it runs the detectors (``detectors.runtime``)
and decides through ``engine.service.runtime.Runtime.decide``. The session registry
(``sessions``) is protocol-neutral; each ingestion protocol has its own adapter
(``twilio``), and the API routes (``engine.api.routes.live``) speak the wire.
"""
