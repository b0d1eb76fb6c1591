"""The AudioHook wire pieces on their own: positions, frame decoding, media choice, the
signature base, the nonce cache's bound and the pause decision."""

from __future__ import annotations

import base64
import hashlib
import hmac

import numpy as np
import pytest

from engine.streaming import audiohook as ah
from engine.streaming import signatures as sig


def test_positions_are_iso_durations_counted_in_samples() -> None:
    assert ah.format_duration(0) == "PT0S"
    assert ah.format_duration(8000) == "PT1S"
    assert ah.format_duration(8000 * 61 + 4) == "PT61S"  # to the millisecond
    assert ah.format_duration(12_345) == "PT1.543S"
    assert ah.parse_duration("PT1.25S") == 1.25
    with pytest.raises(ah.AudioHookError):
        ah.parse_duration("1.25")


def test_stereo_l16_is_little_endian_external_first() -> None:
    offer = ah.MediaOffer(type="audio", format="L16", channels=["external", "internal"], rate=8000)
    data = np.array([16384, -16384, 8192, 0], dtype="<i2").tobytes()
    ch = ah.decode_frame(data, offer)
    assert ch["external"].tolist() == [0.5, 0.25]
    assert ch["internal"].tolist() == [-0.5, 0.0]


def test_the_first_usable_offer_is_chosen() -> None:
    offers = [
        ah.MediaOffer(type="audio", format="PCMU", channels=["internal"], rate=8000),
        ah.MediaOffer(type="audio", format="PCMU", channels=["internal", "external"], rate=8000),
        ah.MediaOffer(type="audio", format="L16", channels=["external"], rate=8000),
    ]
    assert ah.choose_media(offers) is offers[1]  # internal-first order is kept as offered
    with pytest.raises(ah.AudioHookError) as err:
        ah.choose_media(offers[:1])
    assert err.value.code == ah.UNSUPPORTED_MEDIA


def _req(**headers: str) -> sig.Request:
    return sig.Request(
        headers={"host": "LG.example:443", "x-api-key": "k1", **headers},
        method="GET",
        request_target="/v1/streams/audiohook?a=1",
        scheme="https",
    )


def test_the_signature_base_follows_rfc_9421() -> None:
    field = '("@request-target" "@authority" "x-api-key");keyid="k1";nonce="n\\"q";created=5'
    (label, parsed), *_ = sig.parse_dictionary(f"sig1={field}").items()
    assert label == "sig1" and isinstance(parsed, sig.InnerList)
    assert sig.serialize_inner_list(parsed) == field
    assert sig.signature_base(_req(), parsed) == (
        '"@request-target": /v1/streams/audiohook?a=1\n'
        '"@authority": lg.example:443\n'
        '"x-api-key": k1\n'
        f'"@signature-params": {field}'
    )


def test_a_tampered_mac_is_refused_and_the_right_one_verifies() -> None:
    headers = {
        "audiohook-organization-id": "o",
        "audiohook-session-id": "s",
        "audiohook-correlation-id": "c",
    }
    comps = " ".join(f'"{c}"' for c in sig.REQUIRED_COMPONENTS)
    field = f'({comps});keyid="k1";nonce="{"n" * 24}";alg="hmac-sha256";created=1000'
    (_, parsed), *_ = sig.parse_dictionary(f"sig1={field}").items()
    assert isinstance(parsed, sig.InnerList)
    req = _req(**headers)
    base = sig.signature_base(req, parsed)
    mac = hmac.new(b"secret", base.encode(), hashlib.sha256).digest()
    good = {**headers, "signature-input": f"sig1={field}"}
    signed = _req(**good, signature=f"sig1=:{base64.b64encode(mac).decode()}:")
    assert sig.verify(signed, b"secret", "k1", now=1001).nonce == "n" * 24
    forged = _req(**good, signature=f"sig1=:{base64.b64encode(mac[::-1]).decode()}:")
    with pytest.raises(sig.SignatureRefused, match="does not match"):
        sig.verify(forged, b"secret", "k1", now=1001)
    with pytest.raises(sig.SignatureRefused, match="expired"):
        sig.verify(signed, b"secret", "k1", now=1000 + sig.MAX_AGE_S + sig.CLOCK_SKEW_S + 1)


def test_the_nonce_cache_refuses_replays_and_is_bounded() -> None:
    cache = sig.NonceCache(max_entries=2)
    assert cache.admit(sig.Verified("a", 10.0), now=0)
    assert not cache.admit(sig.Verified("a", 10.0), now=1)
    assert cache.admit(sig.Verified("b", 10.0), now=1)
    with pytest.raises(sig.CacheFull):
        cache.admit(sig.Verified("c", 10.0), now=2)  # both still valid: refused, not evicted
    assert cache.admit(sig.Verified("c", 20.0), now=11)  # a and b expired and were purged
    assert len(cache) == 1


def test_a_backlog_pauses_once_then_resumes_after_the_hold() -> None:
    bp = ah.Backpressure(lag_s=2.0, hold_s=2.0)
    assert not bp.observe(2.5, now=0)  # one busy moment: not a backlog
    assert not bp.observe(0.1, now=0.5)
    assert not bp.observe(2.0, now=0.6)
    assert bp.observe(3.0, now=1) and bp.paused  # two in a row 2 s behind
    assert not bp.observe(5.0, now=1.5)  # already paused
    assert not bp.resume_due(now=2.9)
    assert bp.resume_due(now=3.0) and not bp.paused
    assert not bp.resume_due(now=4.0)
    assert bp.pauses == 1


def test_a_wake_before_the_hold_has_passed_leaves_the_rest_of_it_to_wait() -> None:
    # A timer may fire a little early by the real clock (uvloop's loop clock): the handler
    # asks what remains and waits again, instead of never resuming.
    bp = ah.Backpressure(lag_s=0.0, hold_s=2.0)
    bp.observe(0.0, now=10.0)
    assert bp.observe(0.0, now=10.0) and bp.paused
    assert not bp.resume_due(now=11.999)
    assert bp.remaining(now=11.999) == pytest.approx(0.001)
    assert bp.resume_due(now=12.0) and bp.remaining(now=12.0) == 0.0
