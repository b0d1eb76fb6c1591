"""A forwarded context update refused by the replica that streams the session: the caller
hears whose refusal it is, and a busy owner's advice to retry survives the relay."""

from __future__ import annotations

from engine.streaming.events import Relayed


def test_a_relayed_refusal_says_whose_answer_it_is() -> None:
    err = Relayed("session_not_found", 404, "no live session 'c1' on this replica (ended)")
    assert err.http_status == 404 and err.code == "session_not_found"
    assert err.message.startswith("the replica streaming this session answered: ")
    assert getattr(err, "headers", None) is None


def test_a_relayed_refusal_about_the_request_is_passed_on_as_is() -> None:
    msg = "identity: may not be null (send the whole section)"
    assert Relayed("request_invalid", 422, msg).message == msg


def test_a_relayed_busy_refusal_keeps_retry_after() -> None:
    for status in (429, 503):
        assert Relayed("busy", status, "too many live sessions").headers == {"Retry-After": "1"}
