"""A wake-up for the engine's command poller: a Linux abstract Unix datagram socket named after the state store.

The `commands` table stays the transport (durable, audited, survives restarts, works on PostgreSQL). The doorbell
only ends the poller's wait early, so a command is claimed within milliseconds instead of up to one poll interval
(`runtime.command_poll_ms`). It is best-effort by design: when the socket cannot be bound or nobody listens, the
timed poll still picks the command up. A ring carries no data and is never trusted for anything but "look now", so a
stray datagram from another local process costs one extra poll at most. Abstract names (Linux) need no file, no
path-length budget and no clean-up after a SIGKILL; elsewhere the doorbell is off and polling alone is used.

Owner check: the engine's socket asks the kernel for each sender's credentials (SO_PASSCRED / SCM_CREDENTIALS, which
a sender cannot forge); a ring from any uid other than the engine's own (or root's) is drained and ignored, so another
local user can neither wake the poller nor make it spin by flooding the name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import socket
import struct
import sys
import threading

from engine.store.db import Store

log = logging.getLogger("quantdesk.doorbell")


def doorbell_address(store: Store, engine: str = "main") -> str | None:
    """The abstract socket name of engine `engine`'s command poller on this store (one socket per engine of a desk;
    main keeps the name it always had); None where abstract sockets do not exist."""
    if not sys.platform.startswith("linux"):
        return None
    key = str(store.path.resolve()) if store.path is not None else str(store.url)
    if engine != "main":
        key += f"\0{engine}"
    return "\0quantdesk-commands-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def ring(address: str | None) -> bool:
    """Wake the engine's command poller for this address now; False when nobody listens (it still polls)."""
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)  # a full queue means the poller is already awake: never wait for it
            sock.sendto(b"!", address)
        return True
    except OSError:
        return False


_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_CRED_SPACE = socket.CMSG_SPACE(_CRED.size)
_TRUSTED_UIDS = frozenset({os.geteuid(), 0})


def sender_uid(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The sender's uid from a datagram's SCM_CREDENTIALS (None when the kernel attached none)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= _CRED.size:
            return _CRED.unpack(data[:_CRED.size])[1]
    return None


class Doorbell:
    """The engine's end: `wait(timeout)` sleeps until rung, stopped or timed out, whichever comes first."""

    def __init__(self, address: str | None, stop: threading.Event) -> None:
        self.address = address
        self._stop = stop
        self._sock: socket.socket | None = None
        if address is None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(address)
        except OSError as exc:  # e.g. a second process on the same store: polling alone still works
            sock.close()
            log.warning("command doorbell not bound (%s); commands are picked up by polling only", exc)
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # the kernel stamps each datagram's sender uid
        sock.setblocking(False)
        self._sock = sock
        self.ignored = 0  # rings from other users, drained and not acted on

    @property
    def bound(self) -> bool:
        """True when rings reach this poller."""
        return self._sock is not None

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to timeout_s; True when rung (every queued ring is drained, so one wake serves them all)."""
        if self._sock is None:
            self._stop.wait(timeout_s)
            return False
        ready, _, _ = select.select([self._sock], [], [], timeout_s)
        rung = False
        while ready:
            try:
                _data, ancillary, _flags, _addr = self._sock.recvmsg(64, _CRED_SPACE)
            except BlockingIOError:
                break
            except OSError:
                break
            if sender_uid(ancillary) in _TRUSTED_UIDS:
                rung = True
            else:
                self.ignored += 1
        return rung

    def wake(self) -> None:
        """End a current wait (used on stop)."""
        ring(self.address if self._sock is not None else None)

    def close(self) -> None:
        """Release the address."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
