"""The decision service's HTTP API (FastAPI)."""

from engine.api.app import create_app

__all__ = ["create_app"]
