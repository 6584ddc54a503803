"""Real local receivers for alert-delivery tests: a JSON webhook server and an SMTP server (aiosmtpd), both on
127.0.0.1 at free ports. apprise sends to them over real sockets (`json://127.0.0.1:PORT/hook`,
`mailto://127.0.0.1:PORT?from=...&to=...&mode=insecure`); nothing in the sending path is mocked.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    """A JSON webhook endpoint that records every POSTed body; can go down and come back on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The apprise URL of this receiver."""
        return f"json://127.0.0.1:{self.port}/hook"

    def start(self) -> "WebhookReceiver":
        """Listen (again) on the port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.messages.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return None

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused until start())."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def texts(self) -> list[str]:
        """Title + message of every received notification."""
        with self._lock:
            return [f"{m.get('title', '')}\n{m.get('message', '')}" for m in self.messages]


class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1 recording every message (subject + body text)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.messages: list[str] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd
                import email
                from email import policy

                msg = email.message_from_bytes(envelope.content, policy=policy.default)
                part = msg.get_body(preferencelist=("plain", "html"))
                text = part.get_content() if part is not None else ""
                receiver.messages.append(f"{msg['Subject']}\n{text}")
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        """The apprise mailto:// URL of this receiver (plain SMTP, no TLS, no login)."""
        return f"mailto://127.0.0.1:{self.port}?from=desk@example.com&to=operator@example.com&mode=insecure"

    def start(self) -> "SmtpReceiver":
        """Start the SMTP server thread."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop the SMTP server."""
        self._controller.stop()
