"""Notice a terminal that has gone away, so a console whose tmux pane or SSH session died exits instead of spinning.

When a pty hangs up, its processes normally get SIGHUP. A console started through a parent that takes the signal
and does not pass it on (`make run` is one: make is the session leader) never hears it; Textual's input thread then
reads end-of-file in a loop, and the orphaned console burned half a core until killed (seen in testing). A hung-up
terminal answers `tcgetattr` with EIO, which is cheap to ask once a second.
"""

from __future__ import annotations

import errno
import sys
import termios


def controlling_fd() -> int | None:
    """The console's input terminal descriptor, or None when stdin is not a terminal (tests, pipes)."""
    stream = sys.__stdin__
    try:
        return stream.fileno() if stream is not None and stream.isatty() else None
    except (OSError, ValueError):
        return None


def terminal_lost(fd: int) -> bool:
    """True when the terminal on fd has hung up (or the descriptor is gone): nobody can see the console any more."""
    try:
        termios.tcgetattr(fd)
    except termios.error as exc:
        return bool(exc.args) and exc.args[0] in (errno.EIO, errno.EBADF, errno.ENXIO)
    except OSError:
        return True
    return False
