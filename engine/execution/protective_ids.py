"""Our protective orders' client ids: `qd-<instance tag>-ps<digest>` (stop), `-pt` (take-profit), `-px` (close of
a crossed stop); the two legs of a spot OCO list share one digest. A leaf of engine.execution, so the protection
logic and the exchange wiring (OCO lists, cleanup) read the same ids without importing each other.
"""

from __future__ import annotations

import hashlib

from engine.execution.orders import CLIENT_ID_PREFIX, instance_tag

MARKERS = {"stop": "ps", "take": "pt", "close": "px"}  # protective stop, take-profit, close of a crossed stop


def protective_client_id(instance_id: str, symbol: str, kind: str, nonce: int) -> str:
    """`qd-<tag>-ps<digest>` (stop), `-pt` (take-profit) or `-px` (crossed-stop close): <= 32 exchange-safe chars."""
    digest = hashlib.sha1(f"{instance_id}|{symbol}|{kind}|{nonce}".encode()).hexdigest()[:18]
    return f"{CLIENT_ID_PREFIX}{instance_tag(instance_id)}-{MARKERS[kind]}{digest}"


def oco_client_ids(instance_id: str, symbol: str, nonce: int) -> tuple[str, str]:
    """(stop leg, take-profit leg) client ids of one OCO list: one digest, so either leg names the list
    (`-pl<digest>`, engine.execution.ccxt_oco.oco_list_client_id)."""
    digest = hashlib.sha1(f"{instance_id}|{symbol}|oco|{nonce}".encode()).hexdigest()[:18]
    head = f"{CLIENT_ID_PREFIX}{instance_tag(instance_id)}-"
    return f"{head}{MARKERS['stop']}{digest}", f"{head}{MARKERS['take']}{digest}"


def parse_protective_id(coid: str) -> tuple[str, str] | None:
    """(instance tag, kind) of one of our protective client ids, None for any other id."""
    parts = coid.split("-")
    if len(parts) != 3 or parts[0] + "-" != CLIENT_ID_PREFIX:
        return None
    for kind, marker in MARKERS.items():
        if kind != "close" and parts[2].startswith(marker) and len(parts[2]) == len(marker) + 18:
            return parts[1], kind
    return None
