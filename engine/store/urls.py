"""What a store target may be: a SQLite file path, a sqlite:/// URL, or a PostgreSQL URL (psycopg 3 driver).

Anything else that looks like a URL is refused with a message naming it, so a mistyped `--state` never turns into a
SQLite file inside a folder called `postgresql+psycopg:` (as it once did).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
POSTGRES_SCHEMES = ("postgresql+psycopg", "postgresql", "postgres")
SUPPORTED = "a file path, sqlite:///PATH or postgresql+psycopg://USER@HOST[:PORT]/DB"


class StoreTargetError(ValueError):
    """A store path/URL that is neither a file path nor a supported database URL."""


def store_url_for(target: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL for a store target: paths become sqlite URLs; postgres URLs get the psycopg 3 driver."""
    text = os.fspath(target).strip()
    if not text:
        raise StoreTargetError(f"store: empty path or URL; expected {SUPPORTED}")
    match = _SCHEME.match(text)
    if match is None:
        if text.split("/", 1)[0].rstrip(":") in POSTGRES_SCHEMES or text.startswith(("postgresql+", "sqlite:")):
            raise StoreTargetError(f"store: {text!r} looks like a URL with a missing '//'; expected {SUPPORTED}")
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    scheme = match.group("scheme").lower()
    rest = text[match.end():]
    if scheme == "sqlite":
        return text
    if scheme in POSTGRES_SCHEMES:
        if not rest.strip("/"):
            raise StoreTargetError(f"store: {text!r} names no host/database; expected {SUPPORTED}")
        return f"postgresql+psycopg://{rest}"
    raise StoreTargetError(f"store: unsupported URL scheme {scheme!r} in {redact(text)!r}; expected {SUPPORTED}")


def is_postgres_url(url: str) -> bool:
    """True for a PostgreSQL URL (any of the accepted spellings)."""
    match = _SCHEME.match(url.strip())
    return bool(match) and match.group("scheme").lower() in POSTGRES_SCHEMES


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for messages and logs."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
