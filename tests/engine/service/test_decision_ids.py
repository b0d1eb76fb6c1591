"""Decision ids: unguessable, unique, and in time order (index locality in the store)."""

from __future__ import annotations

import re
import time

from engine.service.ids import new_decision_id


def test_decision_ids_are_32_lowercase_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", new_decision_id())


def test_decision_ids_carry_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    stamp = int(new_decision_id()[:12], 16)
    after = time.time_ns() // 1_000_000
    assert before <= stamp <= after


def test_later_decision_ids_sort_after_earlier_ones() -> None:
    first = new_decision_id()
    time.sleep(0.002)
    assert new_decision_id() > first


def test_decision_ids_are_unique_within_one_millisecond() -> None:
    ids = [new_decision_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
