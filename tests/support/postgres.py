"""A throwaway PostgreSQL server for tests: initdb in a temp dir, listening on 127.0.0.1 at a free port.

Debian's server binaries live in /usr/lib/postgresql/<major>/bin (not on PATH); `.ci/run` installs the package. The
server refuses to run as root, so under root the cluster is created and started as the `postgres` OS user (the
package creates it) in a directory that user owns. Each test gets its own database (`fresh_database`), so tests stay
independent without restarting the server. The server is stopped (fast shutdown) when the session ends.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (install Debian's `postgresql` package)."""


def server_bindir() -> Path:
    """The directory holding initdb and pg_ctl: pg_config's --bindir, else the newest /usr/lib/postgresql/*/bin."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for path in candidates:
        if (Path(path) / "initdb").exists():
            return Path(path)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb) found; apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    """Run a server command as `postgres` when we are root (postgres refuses to run as root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class PostgresServer:
    """A running throwaway cluster; `url(db)` gives a SQLAlchemy URL for one of its databases."""

    root: Path
    port: int
    user: str
    bindir: Path
    options: str = ""
    _template: str = ""

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) for `database` on this server over TCP on 127.0.0.1."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def fresh_database(self) -> str:
        """Create an empty database with a unique name and return its URL."""
        import psycopg

        name = "qd_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def migrated_database(self) -> str:
        """A new database holding today's migrated schema and nothing else, cloned from a template migrated once per
        server (CREATE DATABASE ... TEMPLATE copies files: ~10x cheaper than migrating each test's database)."""
        import psycopg

        if not self._template:
            from engine.store import open_store

            url = self.fresh_database()
            open_store(url).dispose()
            self._template = url.rsplit("/", 1)[1]
        name = "qd_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop a test's database, ending whatever connections the test left open (keeps the server's connection
        count and disk bounded over a session of hundreds of tests)."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def terminate(self, url: str) -> int:
        """pg_terminate_backend on every session connected to the URL's database (a killed connection, as a server
        restart or a network cut does to a client); returns how many were ended."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                                "AND pid <> pg_backend_pid()", (name,)).fetchall()
        return sum(1 for (ok,) in rows if ok)

    def _dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres"

    def pause(self) -> None:
        """Stop the server (fast shutdown, as `systemctl stop postgresql` does) and keep its data: every client
        session ends and new connections are refused until `resume`."""
        subprocess.run(_as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                                        "-w", "stop"]), capture_output=True, timeout=60, check=True)

    def resume(self) -> None:
        """Start the paused server again on the same port and data."""
        subprocess.run(_as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-o",
                                        self.options, "-l", str(self.root / "server.log"), "-w", "-t", "60",
                                        "start"]), capture_output=True, timeout=90, check=True)

    def stop(self) -> None:
        """Fast shutdown, then remove the cluster directory."""
        subprocess.run(_as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                                        "-w", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    """initdb + pg_ctl start on a free 127.0.0.1 port with trust auth (local test cluster only)."""
    bindir = server_bindir()
    root = Path(tempfile.mkdtemp(prefix="quantdesk-pg-"))
    os.chmod(root, 0o755)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    init = subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust",
                                           "-E", "UTF8", "--no-sync"]), capture_output=True, text=True, timeout=120)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-400:]}")
    port = _free_port()
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock} -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    start = subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                            str(root / "server.log"), "-w", "-t", "60", "start"]),
                           capture_output=True, text=True, timeout=90)
    if start.returncode != 0:
        log = (root / "server.log").read_text(errors="replace")[-600:] if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"pg_ctl start failed: {start.stderr.strip()[-300:]} {log}")
    return PostgresServer(root=root, port=port, user=user, bindir=bindir, options=opts)
