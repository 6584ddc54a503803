"""API keys and Binance's request signing: HMAC-SHA256 over the query string + body, timestamp and recvWindow.

Checks run in Binance's order: the key (-2014 malformed/missing, -2015 unknown), the signature (-1102 missing,
-1022 wrong), then the timestamp (-1102 missing, -1131 recvWindow over 60 s, -1021 ahead of the server by more than
1 s or older than recvWindow). The signed payload is the raw query string concatenated with the raw body, minus the
`signature` parameter, exactly as the client sent them (order preserved).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from engine.venue.errors import VenueError, bad_param

KEY_RE = re.compile(r"^[A-Za-z0-9]{16,128}$")
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ApiKey:
    """One API key pair the twin accepts."""

    key: str
    secret: str


def generate_key_pair() -> ApiKey:
    """A fresh random key pair in Binance's format (64 alphanumeric characters each)."""
    return ApiKey("".join(secrets.choice(_ALPHABET) for _ in range(64)),
                  "".join(secrets.choice(_ALPHABET) for _ in range(64)))


def sign(payload: str, secret: str) -> str:
    """Hex HMAC-SHA256 of `payload` with `secret` (Binance's HMAC signature)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def strip_signature(raw: str) -> tuple[str, str | None]:
    """Split a raw urlencoded string into (the same string without `signature=`, the signature value)."""
    kept, sig = [], None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            sig = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), sig


class KeyRing:
    """The keys the twin accepts, and the checks of a signed request."""

    def __init__(self, keys: list[ApiKey], clock_ms: Callable[[], int] | None = None) -> None:
        self._keys = {k.key: k for k in keys}
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))

    def add(self, key: ApiKey) -> None:
        """Accept one more key pair."""
        self._keys[key.key] = key

    def check_key(self, api_key: str | None) -> ApiKey:
        """The key pair named by the X-MBX-APIKEY header, or Binance's -2014/-2015."""
        if not api_key or not KEY_RE.match(api_key):
            raise VenueError(-2014, "API-key format invalid.", status=401)
        found = self._keys.get(api_key)
        if found is None:
            raise VenueError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        return found

    def verify(self, api_key: str | None, query: str, body: str, params: Mapping[str, str]) -> ApiKey:
        """Check key, signature and timestamp of a SIGNED request; return the key or raise Binance's error."""
        key = self.check_key(api_key)
        q_rest, q_sig = strip_signature(query)
        b_rest, b_sig = strip_signature(body)
        signature = q_sig or b_sig
        if not signature:
            raise bad_param("signature")
        payload = q_rest + b_rest
        if not hmac.compare_digest(sign(payload, key.secret), signature.lower()):
            raise VenueError(-1022, "Signature for this request is not valid.")
        self.check_timestamp(params)
        return key

    def verify_params(self, params: Mapping[str, str]) -> ApiKey:
        """Check a websocket-API signed request (params hold apiKey, timestamp and signature; keys sorted)."""
        key = self.check_key(params.get("apiKey"))
        signature = params.get("signature")
        if not signature:
            raise bad_param("signature")
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
        if not hmac.compare_digest(sign(payload, key.secret), str(signature).lower()):
            raise VenueError(-1022, "Signature for this request is not valid.")
        self.check_timestamp(params)
        return key

    def check_timestamp(self, params: Mapping[str, str]) -> None:
        """Binance's timing rule: server - recvWindow <= timestamp < server + 1000 ms."""
        raw_ts = params.get("timestamp")
        try:
            ts = int(str(raw_ts))
        except (TypeError, ValueError):
            raise bad_param("timestamp") from None
        raw_window = params.get("recvWindow")
        try:
            window = DEFAULT_RECV_WINDOW if raw_window in (None, "") else int(str(raw_window))
        except ValueError:
            raise bad_param("recvWindow") from None
        if window <= 0 or window > MAX_RECV_WINDOW:
            raise VenueError(-1131, "recvWindow must be less than 60000")
        now = self._clock_ms()
        if ts >= now + 1000:
            raise VenueError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > window:
            raise VenueError(-1021, "Timestamp for this request is outside of the recvWindow.")
