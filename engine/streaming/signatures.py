"""HTTP message signatures on the AudioHook WebSocket upgrade (RFC 9421 as Genesys uses it).

Genesys Cloud signs the upgrade request with HMAC-SHA256 and the integration's client
secret: ``Signature-Input`` names the covered components and the signature parameters
(``keyid`` = the ``X-API-KEY`` value, ``nonce``, ``alg``, ``created``, ``expires``) and
``Signature`` carries the MAC, both as RFC 8941 structured-field dictionaries. Here: just
enough of RFC 8941 to read and re-serialize those two fields, the signature base of RFC 9421
§2.5, the checks (every required component covered, algorithm, key id, age and expiry,
nonce) and the replay guard that refuses a nonce seen before: on every replica sharing
the store (``engine.store.nonces``), with a bounded per-process cache in front of it.

The signature base is rebuilt from the *parsed* ``Signature-Input`` (re-serialized), not
from its raw text, so a signer that pads or reorders differently does not verify.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.store.nonces import NoncesFull, NonceStore

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: What Genesys covers, and what we therefore require a signature to cover.
REQUIRED_COMPONENTS = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)
_DERIVED = ("@request-target", "@authority", "@method", "@path", "@query", "@scheme")
#: A signature older than this (from ``created``) is expired, as in Genesys's reference
#: server; ``expires``, when given, may only shorten it.
MAX_AGE_S = 10
#: Clocks differ: ``created`` may lie this far in the future, ages get this much slack.
CLOCK_SKEW_S = 3
#: 18 random bytes in base64 (what Genesys sends) are 24 characters; the reference
#: server refuses fewer than 22.
MIN_NONCE_CHARS = 22
MAX_NONCE_CHARS = 256
MAX_FIELD_CHARS = 4096


class SignatureRefused(Exception):
    """The upgrade is refused (HTTP 401) with this reason; it never holds the secret."""


# --- RFC 8941 structured fields (the subset the two signature fields use) -------------------

BareItem = str | int | bool | bytes | float


@dataclass(frozen=True)
class Token:
    value: str


@dataclass(frozen=True)
class Item:
    value: BareItem | Token
    params: tuple[tuple[str, BareItem | Token], ...] = ()


@dataclass(frozen=True)
class InnerList:
    items: tuple[Item, ...]
    params: tuple[tuple[str, BareItem | Token], ...] = ()


_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUMBER = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,3})?")


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, what: str) -> SignatureRefused:
        return SignatureRefused(f"{what} at character {self.i}")

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def ows(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.i += 1

    def sp(self) -> None:
        while self.peek() == " ":
            self.i += 1

    def key(self) -> str:
        m = _KEY.match(self.s, self.i)
        if not m:
            raise self.fail("a key expected")
        self.i = m.end()
        return m.group()

    def bare_item(self) -> BareItem | Token:
        c = self.peek()
        if c == '"':
            self.i += 1
            out: list[str] = []
            while True:
                c = self.peek()
                if not c:
                    raise self.fail("an unterminated string")
                self.i += 1
                if c == "\\":
                    nxt = self.peek()
                    if nxt not in ('"', "\\"):
                        raise self.fail("a bad escape in a string")
                    out.append(nxt)
                    self.i += 1
                elif c == '"':
                    return "".join(out)
                elif not (0x20 <= ord(c) <= 0x7E):
                    raise self.fail("a non-printable character in a string")
                else:
                    out.append(c)
        if c == ":":
            end = self.s.find(":", self.i + 1)
            if end < 0:
                raise self.fail("an unterminated byte sequence")
            raw = self.s[self.i + 1 : end]
            self.i = end + 1
            try:
                return base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise self.fail("a byte sequence that is not base64") from None
        if c == "?":
            v = self.s[self.i + 1 : self.i + 2]
            if v not in ("0", "1"):
                raise self.fail("a bad boolean")
            self.i += 2
            return v == "1"
        if c == "-" or c.isdigit():
            m = _NUMBER.match(self.s, self.i)
            if not m:
                raise self.fail("a bad number")
            self.i = m.end()
            return float(m.group()) if m.group(1) else int(m.group())
        m = _TOKEN.match(self.s, self.i)
        if not m:
            raise self.fail("an item expected")
        self.i = m.end()
        return Token(m.group())

    def params(self) -> tuple[tuple[str, BareItem | Token], ...]:
        out: list[tuple[str, BareItem | Token]] = []
        while self.peek() == ";":
            self.i += 1
            self.sp()
            k = self.key()
            v: BareItem | Token = True
            if self.peek() == "=":
                self.i += 1
                v = self.bare_item()
            out.append((k, v))
        return tuple(out)

    def member(self) -> Item | InnerList:
        if self.peek() == "(":
            self.i += 1
            items: list[Item] = []
            while True:
                self.sp()
                if self.peek() == ")":
                    self.i += 1
                    return InnerList(tuple(items), self.params())
                items.append(Item(self.bare_item(), self.params()))
                if self.peek() not in (" ", ")"):
                    raise self.fail("a space or ')' expected in an inner list")
        return Item(self.bare_item(), self.params())

    def dictionary(self) -> dict[str, Item | InnerList]:
        out: dict[str, Item | InnerList] = {}
        self.sp()
        while self.i < len(self.s):
            k = self.key()
            if self.peek() == "=":
                self.i += 1
                out[k] = self.member()
            else:
                out[k] = Item(True, self.params())
            self.ows()
            if self.i >= len(self.s):
                break
            if self.peek() != ",":
                raise self.fail("',' expected between dictionary members")
            self.i += 1
            self.ows()
            if self.i >= len(self.s):
                raise self.fail("a trailing ','")
        return out


def parse_dictionary(text: str) -> dict[str, Item | InnerList]:
    if len(text) > MAX_FIELD_CHARS:
        raise SignatureRefused(f"longer than {MAX_FIELD_CHARS} characters")
    return _Parser(text.strip()).dictionary()


def _serialize_bare(v: BareItem | Token) -> str:
    if isinstance(v, Token):
        return v.value
    if isinstance(v, bool):
        return "?1" if v else "?0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        text = f"{v:.3f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(v, bytes):
        return ":" + base64.b64encode(v).decode() + ":"
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _serialize_params(params: tuple[tuple[str, BareItem | Token], ...]) -> str:
    return "".join(f";{k}" if v is True else f";{k}={_serialize_bare(v)}" for k, v in params)


def serialize_inner_list(lst: InnerList) -> str:
    inner = " ".join(_serialize_bare(i.value) + _serialize_params(i.params) for i in lst.items)
    return f"({inner}){_serialize_params(lst.params)}"


# --- RFC 9421 verification -------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What of the upgrade request a signature may cover: lower-cased header names, each
    field's values joined with ', ' as RFC 9421 §2.1 asks."""

    headers: Mapping[str, str]
    method: str
    request_target: str  # path and query as sent
    scheme: str


@dataclass(frozen=True)
class Verified:
    nonce: str
    valid_until: float


def _component_value(req: Request, name: str) -> str:
    if name == "@request-target":
        return req.request_target
    if name == "@authority":
        host = req.headers.get("host")
        if not host:
            raise SignatureRefused("@authority: no Host header")
        return host.strip().lower()
    if name == "@method":
        return req.method.upper()
    if name == "@path":
        return req.request_target.split("?", 1)[0]
    if name == "@query":
        _, _, q = req.request_target.partition("?")
        return "?" + q
    if name == "@scheme":
        return req.scheme.lower()
    value = req.headers.get(name)
    if value is None:
        raise SignatureRefused(f"covered header {name!r} is not in the request")
    return value


def signature_base(req: Request, sig_input: InnerList) -> str:
    """RFC 9421 §2.5: one line per covered component, then ``"@signature-params"``."""
    lines: list[str] = []
    seen: set[str] = set()
    for item in sig_input.items:
        name = item.value
        if not isinstance(name, str) or isinstance(name, bool):
            raise SignatureRefused("Signature-Input: a covered component is not a string")
        if item.params:
            raise SignatureRefused(f"Signature-Input: component parameters on {name!r}")
        if name in seen:
            raise SignatureRefused(f"Signature-Input: {name!r} covered twice")
        if name.startswith("@") and name not in _DERIVED:
            raise SignatureRefused(f"Signature-Input: unsupported derived component {name!r}")
        if name != name.lower() or name in ("signature", "signature-input"):
            raise SignatureRefused(f"Signature-Input: {name!r} may not be covered")
        seen.add(name)
        lines.append(f'"{name}": {_component_value(req, name)}')
    lines.append(f'"@signature-params": {serialize_inner_list(sig_input)}')
    return "\n".join(lines)


def verify(req: Request, secret: bytes, api_key: str, now: float) -> Verified:
    """The request's signature checked against ``secret``; SignatureRefused otherwise."""
    raw_input, raw_sig = req.headers.get("signature-input"), req.headers.get("signature")
    if raw_input is None or raw_sig is None:
        raise SignatureRefused(
            "unsigned: the Signature and Signature-Input headers are required (a client "
            "secret is configured)"
        )
    try:
        inputs = parse_dictionary(raw_input)
    except SignatureRefused as exc:
        raise SignatureRefused(f"Signature-Input: not a structured dictionary ({exc})") from None
    try:
        sigs = parse_dictionary(raw_sig)
    except SignatureRefused as exc:
        raise SignatureRefused(f"Signature: not a structured dictionary ({exc})") from None
    if not inputs:
        raise SignatureRefused("Signature-Input: empty")
    label, sig_input = next(iter(inputs.items()))  # the first signature is Genesys's
    sig = sigs.get(label)
    if not isinstance(sig_input, InnerList):
        raise SignatureRefused(f"Signature-Input: {label} is not an inner list")
    if not isinstance(sig, Item) or not isinstance(sig.value, bytes):
        raise SignatureRefused(f"Signature: no byte sequence labelled {label}")
    params: dict[str, BareItem | Token] = {}
    for k, v in sig_input.params:
        if k in params:
            raise SignatureRefused(f"Signature-Input: parameter {k!r} twice")
        params[k] = v
    unknown = sorted(set(params) - {"alg", "created", "expires", "keyid", "nonce"})
    if unknown:
        raise SignatureRefused(f"Signature-Input: unknown parameter {unknown[0]!r}")
    alg = params.get("alg", "hmac-sha256")
    if alg != "hmac-sha256":
        raise SignatureRefused("Signature-Input: alg must be hmac-sha256")
    keyid = params.get("keyid")
    if not isinstance(keyid, str):
        raise SignatureRefused("Signature-Input: keyid (a string) is required")
    if not hmac.compare_digest(keyid.encode(), api_key.encode()):
        raise SignatureRefused("Signature-Input: keyid does not match X-API-KEY")
    created, expires = params.get("created"), params.get("expires")
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        raise SignatureRefused("Signature-Input: created (an integer) is required")
    if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool)):
        raise SignatureRefused("Signature-Input: expires must be an integer")
    if created > now + CLOCK_SKEW_S:
        raise SignatureRefused("created lies in the future")
    valid_until = created + MAX_AGE_S + CLOCK_SKEW_S
    if isinstance(expires, int):
        valid_until = min(valid_until, expires + CLOCK_SKEW_S)
    if now > valid_until:
        raise SignatureRefused(f"expired (older than {MAX_AGE_S} s, or past its expires)")
    nonce = params.get("nonce")
    if not isinstance(nonce, str) or not MIN_NONCE_CHARS <= len(nonce) <= MAX_NONCE_CHARS:
        raise SignatureRefused(
            f"Signature-Input: nonce (a string of {MIN_NONCE_CHARS} to {MAX_NONCE_CHARS} "
            "characters) is required"
        )
    covered = {i.value for i in sig_input.items}
    missing = [c for c in REQUIRED_COMPONENTS if c not in covered]
    if missing:
        raise SignatureRefused(f"the signature does not cover {', '.join(missing)}")
    base = signature_base(req, sig_input)
    mac = hmac.new(secret, base.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, sig.value):
        raise SignatureRefused("the signature does not match (wrong client secret, or altered)")
    return Verified(nonce, float(valid_until))


class NonceCache:
    """Nonces of verified signatures until their signature would have expired anyway, so a
    replayed upgrade is refused. Bounded: when it holds ``max_entries`` unexpired nonces a
    new one is refused (503) rather than an old one forgotten, which would reopen its replay
    window. Only a holder of the client secret can add entries (they are verified first)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def holds(self, nonce: str, now: float) -> bool:
        """Whether ``nonce`` was admitted here and its signature has not expired."""
        self._purge(now)
        return nonce in self._seen

    def admit(self, v: Verified, now: float) -> bool:
        """True once per nonce; False for a replay. CacheFull when no room is left."""
        self._purge(now)
        if v.nonce in self._seen:
            return False
        if len(self._seen) >= self.max_entries:
            raise CacheFull(f"{self.max_entries} unexpired nonces are held")
        self._seen[v.nonce] = v.valid_until
        return True

    def _purge(self, now: float) -> None:
        # Insertion order is nearly expiry order (every entry lives about MAX_AGE_S): drop
        # from the front until an unexpired one; a full cache is swept whole.
        while self._seen:
            nonce, until = next(iter(self._seen.items()))
            if until >= now:
                break
            del self._seen[nonce]
        if len(self._seen) >= self.max_entries:
            for nonce in [n for n, until in self._seen.items() if until < now]:
                del self._seen[nonce]


class CacheFull(Exception):
    pass


class NoncesUnavailable(Exception):
    """The nonce store cannot be asked: the upgrade is refused (503), never admitted
    unchecked."""


class ReplayGuard:
    """A nonce admitted once across every replica sharing the store.

    The store (``engine.store.nonces``, one ``INSERT … ON CONFLICT`` per verified upgrade)
    is the authority: the same signed upgrade replayed to another replica within its
    validity window is refused there. The per-process ``NonceCache`` in front of it only
    answers a replay to this replica without a round trip; it learns a nonce after the
    store admitted it, so a refusal by the cache is always one the store would give.
    One code path on SQLite (one replica) and PostgreSQL (several)."""

    def __init__(self, store: NonceStore, cache: NonceCache | None = None) -> None:
        self.store = store
        self.cache = cache or NonceCache(store.max_rows)

    @classmethod
    def on(cls, engine: Engine, max_nonces: int) -> ReplayGuard:
        """The guard of the store behind ``engine`` (the decision log's)."""
        return cls(NonceStore(engine, max_nonces))

    async def admit(self, v: Verified, now: float) -> bool:
        """True once per nonce, on any replica; False for a replay. CacheFull when the
        store holds its bound of unexpired nonces; NoncesUnavailable on a store error."""
        if self.cache.holds(v.nonce, now):
            return False
        try:
            # Off the event loop: a database round trip (SQLite may wait on its lock).
            fresh = await asyncio.to_thread(self.store.admit, v.nonce, v.valid_until, now)
        except NoncesFull as exc:
            raise CacheFull(str(exc)) from None
        except Exception as exc:
            raise NoncesUnavailable(type(exc).__name__) from exc
        if fresh:
            # A full cache only loses its shortcut: the store still refuses the replay.
            with contextlib.suppress(CacheFull):
                self.cache.admit(v, now)
        return fresh
