"""Finding 7: private folders and files, stale model temp files cleaned, the doorbell's owner check, and the audit's
user taken from the OS, not from the environment."""

from __future__ import annotations

import os
import pwd
import socket
import threading
import time
from pathlib import Path

import pytest

from engine.config import Settings, settings_with
from engine.control.doorbell import Doorbell, ring
from engine.runtime.hardening import STALE_TMP_S, harden_desk
from engine.store.db import open_store
from tests.store.cli_run import quantdesk


def test_existing_desk_folders_become_private_and_stale_tmp_files_go(tmp_path: Path) -> None:
    settings = settings_with(Settings(), store={"path": str(tmp_path / "state.db"), "url": ""})
    logs, models, reports = tmp_path / "logs", tmp_path / "models" / "qm", tmp_path / "reports"
    for folder in (logs, models, reports):
        folder.mkdir(parents=True, mode=0o755)
        os.chmod(folder, 0o755)
        (folder / "file.txt").write_text("x")
        os.chmod(folder / "file.txt", 0o644)
    stale, fresh = models / ".champion.joblib.abc.tmp", models / ".challenger.joblib.def.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    old = time.time() - STALE_TMP_S - 60
    os.utime(stale, (old, old))
    mask = os.umask(0o022)
    try:
        harden_desk(settings)
        assert os.umask(0o022) == 0o077  # and everything created from now on is private
    finally:
        os.umask(mask)
    for folder in (logs, models, reports, models.parent):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert (logs / "file.txt").stat().st_mode & 0o777 == 0o600
    assert not stale.exists() and fresh.exists()


def test_doorbell_ignores_rings_from_another_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to send a datagram as another uid")
    address = "\0quantdesk-test-" + os.urandom(6).hex()
    bell = Doorbell(address, threading.Event())
    try:
        pid = os.fork()
        if pid == 0:  # the child becomes 'nobody' and floods the name
            try:
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    sock.setblocking(False)  # a full queue must not block the child
                    for _ in range(5):
                        sock.sendto(b"!", address)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert bell.wait(0.2) is False
        assert bell.ignored == 5
        assert ring(address) is True
        assert bell.wait(1.0) is True
    finally:
        bell.close()


def test_audit_user_is_the_os_user_not_the_environment(tmp_path: Path, state_url: str) -> None:
    state = state_url
    open_store(state).dispose()
    env_user = {"USER": "mallory", "LOGNAME": "mallory", "LNAME": "mallory", "USERNAME": "mallory"}
    saved = {k: os.environ.get(k) for k in env_user}
    os.environ.update(env_user)
    try:
        out = quantdesk("--state", str(state), "halt", cwd=tmp_path)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert out.returncode == 0, out.stderr
    store = open_store(state)
    with store.connect() as conn:
        users = {r[0] for r in conn.exec_driver_sql("SELECT \"user\" FROM audit_log WHERE source = 'cli'")}
    store.dispose()
    assert users == {pwd.getpwuid(os.geteuid()).pw_name}
