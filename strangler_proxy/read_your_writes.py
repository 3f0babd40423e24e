"""Read-your-writes routing on the mitmproxy plane: after a client's write, its reads go to a side that has it.

The owner's answer to a write that emitted events names the aggregate versions it wrote (``X-Strangler-Written``,
added by strangler_sync's ReadYourWritesMiddleware; wire format in servicekit.write_positions). The proxy strips
that header and keeps the positions for the client in a cookie it signs (HMAC-SHA256, a key from the route file's
``settings.read_your_writes.secret_env``, the same on every replica), so any replica can route the client's next
reads and a client cannot forge positions. A read on a route with ``reads_your_writes`` that would go to a side
other than the writer carries the positions (``X-Strangler-Read-After``); the follower answers it only when it has
applied them (``ok``), else 409 ``behind`` and the proxy sends the read to the writer. An answer without ``ok``
(a follower without the middleware) is not served either. Once a follower said ``ok`` the cookie is cleared.
A write that emitted more than the header carries (``many``) pins the client's reads to the writer for
``window`` seconds instead. Clients without the cookie pay one dictionary lookup per read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from servicekit.write_positions import (
    READ_AFTER_HEADER,
    READ_AFTER_OK,
    WRITTEN_HEADER,
    WRITTEN_MANY,
    Position,
    PositionsInvalid,
    positions_format,
    positions_parse,
)
from strangler_proxy.header_fields import field_bytes, folded_value
from strangler_proxy.routing import Decision
from strangler_proxy.spec import SAFE_METHODS, ReadYourWritesSettings, RouteTable

logger = logging.getLogger("strangler_proxy")

MAX_ENTRIES = 16  # entries a cookie keeps (the newest): positions, or pins to a writer
_WRITTEN, _READ_AFTER = WRITTEN_HEADER.lower().encode(), READ_AFTER_HEADER.lower().encode()


@dataclass(frozen=True)
class Entry:
    writer: str  # the upstream that answered the write
    expires: int  # unix seconds
    position: Position | None  # None: a pin (reads go to the writer until it expires)


@dataclass(frozen=True)
class ReadPlan:
    """What a read of a client with recent writes needs: the writer to ask, and the positions for the follower."""

    owner: str
    read_after: str | None  # header value for the follower; None: the read goes to the owner right away
    kept: tuple[Entry, ...]  # the cookie's entries this read does not settle (kept if the follower says ok)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ReadYourWrites:
    """The plane's read-your-writes state: only the signing key (everything per client is in its cookie)."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}

    def key(self, settings: ReadYourWritesSettings) -> bytes:
        env = settings.secret_env
        key = self._keys.get(env)
        if key is None:
            secret = os.environ.get(env)
            if not secret:
                logger.warning("strangler: $%s is not set: read-your-writes cookies are signed with a key of this "
                               "process only (set it, the same on every replica)", env)
            key = self._keys[env] = hashlib.sha256((secret or secrets.token_hex(32)).encode()).digest()
        return key

    # -- the cookie ---------------------------------------------------------------------------------------

    def encode(self, settings: ReadYourWritesSettings, entries: list[Entry]) -> str:
        rows = [[e.writer, e.expires, positions_format([e.position]) if e.position else ""] for e in entries]
        payload = _b64(json.dumps(rows, separators=(",", ":")).encode())
        mac = hmac.new(self.key(settings), payload.encode(), hashlib.sha256).digest()[:16]
        return f"{payload}.{_b64(mac)}"

    def decode(self, settings: ReadYourWritesSettings, value: str, *, now: float) -> list[Entry]:
        """The cookie's live entries; none when it is not one this plane signed (a forged or foreign cookie)."""
        payload, _, mac = value.partition(".")
        try:
            expected = hmac.new(self.key(settings), payload.encode(), hashlib.sha256).digest()[:16]
            if not hmac.compare_digest(expected, _unb64(mac)):
                return []
            entries = []
            for writer, expires, position in json.loads(_unb64(payload)):
                if expires > now:
                    entries.append(Entry(str(writer), int(expires),
                                         positions_parse(position)[0] if position else None))
            return entries
        except (ValueError, TypeError, PositionsInvalid, IndexError):
            return []

    def set_cookie(self, table: RouteTable, entries: list[Entry], *, now: float) -> str:
        settings, sticky = table.settings.read_your_writes, table.sticky
        if entries:
            value, max_age = self.encode(settings, entries), max(1, max(e.expires for e in entries) - int(now))
        else:
            value, max_age = "", 0
        header = f"{settings.cookie}={value}; Path=/; Max-Age={max_age}; SameSite={sticky.same_site}; HttpOnly"
        return header + "; Secure" if sticky.secure or sticky.same_site == "None" else header

    # -- decisions ----------------------------------------------------------------------------------------

    def read_plan(self, table: RouteTable, decision: Decision, *, method: str, cookies: Mapping[str, str],
                  now: float) -> ReadPlan | None:
        """None for most requests (not a read on a read-your-writes route, or no recent write elsewhere)."""
        value = cookies.get(table.settings.read_your_writes.cookie)
        if not value or decision.route is None or decision.overridden or method not in SAFE_METHODS:
            return None
        if not decision.route.reads_your_writes:
            return None
        entries = self.decode(table.settings.read_your_writes, value, now=now)
        elsewhere = [e for e in entries if e.writer != decision.primary and e.writer in table.upstreams]
        if not elsewhere:
            return None
        kept = tuple(e for e in entries if e not in elsewhere)
        pins = [e for e in elsewhere if e.position is None]
        if pins:
            return ReadPlan(owner=pins[-1].writer, read_after=None, kept=kept)
        return ReadPlan(owner=elsewhere[-1].writer, kept=kept,
                        read_after=positions_format([e.position for e in elsewhere]))

    def decision_pinned(self, decision: Decision, plan: ReadPlan) -> Decision:
        """The decision for a read that goes to the owner without asking the follower."""
        return replace(decision, primary=plan.owner, shadow=None, fallback=None,
                       reason=f"{decision.reason}; read-your-writes: pinned to {plan.owner}")

    @staticmethod
    def fresh(answer: str | None) -> bool:
        return answer == READ_AFTER_OK

    def written(self, table: RouteTable, *, writer: str, written: str, cookie: str | None,
                now: float) -> str | None:
        """The Set-Cookie for the answer of a write that says what it wrote (None: nothing to keep)."""
        settings = table.settings.read_your_writes
        entries = self.decode(settings, cookie, now=now) if cookie else []
        if written.strip() == WRITTEN_MANY:
            new = [Entry(writer, int(now) + settings.window, None)]
        else:
            try:
                positions = positions_parse(written)
            except PositionsInvalid:  # an owner we cannot read: pin, the safe side
                positions = []
            new = [Entry(writer, int(now) + settings.max_age, p) for p in positions] or [
                Entry(writer, int(now) + settings.window, None)]
        keys = {(e.writer, e.position[:2] if e.position else None) for e in new}
        entries = [e for e in entries if (e.writer, e.position[:2] if e.position else None) not in keys] + new
        return self.set_cookie(table, entries[-MAX_ENTRIES:], now=now)

    def answered_fields(self, table: RouteTable, *, method: str, upstream: str | None, plan: ReadPlan | None,
                        fields: tuple, cookies: Mapping[str, str], now: float) -> tuple | None:
        """The answer's header fields without the toolkit's headers, plus the cookie they call for (None: no
        change). A write's positions are kept when the table has a read-your-writes route; a follower's ``ok``
        clears the positions it was asked for."""
        written = folded_value(fields, _WRITTEN)
        answer = folded_value(fields, _READ_AFTER)
        if written is None and answer is None:
            return None
        out = tuple((name, value) for name, value in fields if name.lower() not in (_WRITTEN, _READ_AFTER))
        cookie = None
        if written is not None and method not in SAFE_METHODS and upstream in table.upstreams \
                and any_route_reads_your_writes(table):
            cookie = self.written(table, writer=upstream, written=written,
                                  cookie=cookies.get(table.settings.read_your_writes.cookie), now=now)
        elif plan is not None and plan.read_after is not None and self.fresh(answer):
            cookie = self.set_cookie(table, list(plan.kept), now=now)
        return out + ((b"Set-Cookie", field_bytes(cookie)),) if cookie else out


def any_route_reads_your_writes(table: RouteTable) -> bool:
    return any(route.reads_your_writes for route in table.routes)


def now() -> float:
    return time.time()
