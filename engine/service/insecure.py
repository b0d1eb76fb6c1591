"""Insecure dev mode (no authentication): where it may run, and the refusal elsewhere."""

from __future__ import annotations

import ipaddress

from engine.core.errors import LiveguardError
from engine.settings import Settings


class InsecureModeRefused(LiveguardError):
    code = "insecure_mode_refused"
    exit_code = 2


def insecure_mode_problems(settings: Settings, key_count: int) -> list[str]:
    """Why insecure dev mode (no authentication) may not run here, if it may not.

    It is for a developer's own machine: never beside real keys (it would make every
    caller admin over a store that has real callers) and never on an address other
    machines can reach.
    """
    problems = []
    if key_count:
        problems.append(
            f"{key_count} API key(s) exist in the store: insecure mode would make every "
            "caller admin over them; use a key instead"
        )
    if not is_loopback(settings.host):
        problems.append(
            f"host {settings.host!r} is not a loopback address: insecure mode serves "
            "127.0.0.1, ::1 or localhost only"
        )
    return problems


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
