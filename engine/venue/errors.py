"""Binance's error answer: an HTTP status plus `{"code": -NNNN, "msg": "..."}`, raised anywhere in the twin."""

from __future__ import annotations


class VenueError(Exception):
    """A request the twin refuses the way Binance does (status, Binance error code, Binance's message)."""

    def __init__(self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        """The JSON body Binance sends with this error."""
        return {"code": self.code, "msg": self.msg}


def bad_param(name: str) -> VenueError:
    """Binance's -1102 for a missing or malformed mandatory parameter."""
    return VenueError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def bad_symbol() -> VenueError:
    """Binance's -1121 for a symbol it does not list."""
    return VenueError(-1121, "Invalid symbol.")
