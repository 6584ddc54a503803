"""Console benchmarks: idle CPU at 4 Hz with 200 positions and 1,000 open orders, and key-to-HALTED latency.

Both run the real `quantdesk` binary in a private tmux server (a real terminal, so rendering is included):
  idle CPU   - a fixture state.db (200 positions, 1,000 orders, fresh heartbeat, nothing changing); the console
               process's CPU time over a window, as % of one core. Also a "busy" variant where 20 orders change
               per second.
  latency    - a real engine on the simulator (speed 60); ctrl+x then y; time until the header line shows HALTED
               (engine-confirmed) and until state.db holds HALTED; resume (typed) and repeat. Keys go through a
               tmux control-mode client (`tmux -C`), which also reports every pane output as it happens; after
               each output the header line is read with capture-pane over the same client. Nothing is spawned
               per key or per poll, so the measurement does not load the 2-core machine it measures (polling
               with a `tmux capture-pane` process every 5 ms cost up to a core of its own).
Run: .venv/bin/python benchmarks/bench_console.py [--window 15] [--trials 5] [--console-cmd CMD] [--verbose]
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUANTDESK = Path(sys.executable).with_name("quantdesk")

from sqlalchemy import text  # noqa: E402

from engine.clock import now_ms  # noqa: E402
from engine.store import open_readonly  # noqa: E402


class Tmux:
    """A private tmux server with one 100x30 pane."""

    def __init__(self) -> None:
        self.socket = f"qd-bench-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        """Run a tmux command on this server."""
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=10).stdout

    def start(self, cwd: Path, command: str, env: dict[str, str]) -> None:
        """Start the pane running command."""
        extra = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", "100", "-y", "30", "-c", str(cwd), *extra,
                 command)

    def header(self) -> str:
        """The console's status line."""
        lines = self.run("capture-pane", "-p", "-t", "b").splitlines()
        return lines[1] if len(lines) > 1 else ""

    def keys(self, *keys: str) -> None:
        """send-keys."""
        self.run("send-keys", "-t", "b", *keys)

    def console_process(self) -> psutil.Process:
        """The python process of the console inside the pane."""
        pane = int(self.run("display", "-p", "-t", "b", "#{pane_pid}").strip())
        proc = psutil.Process(pane)
        for _ in range(100):
            kids = [p for p in [proc, *proc.children(recursive=True)]
                    if any("quantdesk" in part for part in p.cmdline()) and p.name() != "sh"]
            if kids:
                return kids[0]
            time.sleep(0.1)
        raise RuntimeError("console process not found")

    def kill(self) -> None:
        """Kill our tmux server."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


class TmuxControl:
    """A tmux control-mode client (`tmux -C attach`): commands without spawning a process, and output events.

    Control mode wraps each command's reply in %begin/%end (or %error) and sends %output notifications (never
    inside a reply) whenever the pane writes. One reader thread sorts the two."""

    def __init__(self, tmux: Tmux) -> None:
        self.proc = subprocess.Popen(["tmux", "-L", tmux.socket, "-C", "attach", "-t", "b"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0)
        self.replies: queue.Queue[list[str]] = queue.Queue()
        self.outputs = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.command("refresh-client")  # the greeting's empty reply is consumed by this first exchange

    def _read(self) -> None:
        block: list[str] | None = None
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if block is not None:
                if line.startswith(("%end", "%error")):
                    self.replies.put(block)
                    block = None
                else:
                    block.append(line)
            elif line.startswith("%begin"):
                block = []
            elif line.startswith("%output"):
                self.outputs.set()

    def command(self, cmd: str, timeout: float = 10.0) -> list[str]:
        """Send one tmux command and return its reply lines."""
        while not self.replies.empty():  # stale replies (e.g. the attach greeting)
            self.replies.get_nowait()
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd.encode() + b"\n")
        return self.replies.get(timeout=timeout)

    def header_after(self, t0: float, want: str, timeout: float) -> float:
        """Seconds from t0 (monotonic) until the header line starts with want, checked after every pane output."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.outputs.wait(0.02)
            self.outputs.clear()
            lines = self.command("capture-pane -p -t b -S 1 -E 1")
            if lines and lines[0].startswith(want):
                return time.monotonic() - t0
        raise TimeoutError(f"header did not show {want.strip()}")

    def close(self) -> None:
        """Detach."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(5)


def wait(pred, timeout: float, what: str, interval: float = 0.02):  # noqa: ANN001, ANN201
    """Poll until pred() is truthy."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(what)


def query(db: Path, sql: str):  # noqa: ANN201
    """First column of the first row."""
    store = open_readonly(db)
    try:
        with store.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        store.dispose()


def idle_cpu(window: float, busy: bool) -> dict[str, float]:
    """CPU % of one core used by the console over `window` seconds on a 200-position, 1,000-order desk."""
    from tests.console.deskdata import build_state

    tmp = Path(tempfile.mkdtemp(prefix="qd-bench-cpu-"))
    db = tmp / "state.db"
    store = build_state(db, positions=200, orders=1000, heartbeat_at=now_ms() + 3_600_000)
    tmux = Tmux()
    stop = threading.Event()
    try:
        tmux.start(tmp, f"{QUANTDESK} console --state {db}", {"TEXTUAL_COLOR_SYSTEM": "256"})
        wait(lambda: tmux.header().startswith(" ACTIVE "), 60, "console up")
        proc = tmux.console_process()
        time.sleep(3.0)  # first full reads and paints done

        def churn() -> None:
            i = 0
            while not stop.is_set():
                with store.begin() as conn:
                    for _ in range(5):
                        conn.execute(text("UPDATE orders SET filled_qty = filled_qty + 0.001, updated_at = :t "
                                          "WHERE client_order_id = :c"), {"c": f"qd-{i % 1000:05d}", "t": now_ms()})
                        i += 1
                stop.wait(0.25)

        writer = threading.Thread(target=churn, daemon=True)
        if busy:
            writer.start()
        t0, c0 = time.monotonic(), sum(proc.cpu_times()[:2])
        time.sleep(window)
        t1, c1 = time.monotonic(), sum(proc.cpu_times()[:2])
        return {"cpu_pct_of_core": 100.0 * (c1 - c0) / (t1 - t0), "window_s": t1 - t0}
    finally:
        stop.set()
        tmux.kill()
        store.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def latency(trials: int, console_cmd: str, verbose: bool = False) -> dict[str, float]:
    """Key-to-HALTED on a real engine: on screen (engine-confirmed) and stored in state.db, over several trials."""
    tmp = Path(tempfile.mkdtemp(prefix="qd-bench-lat-"))
    db = tmp / "state.db"
    tmux = Tmux()
    screen_ms: list[float] = []
    stored_ms: list[float] = []
    try:
        tmux.start(tmp, f"{console_cmd} --state {db}", {"QUANTDESK__SIMULATOR__SPEED": "60",
                                                      "TEXTUAL_COLOR_SYSTEM": "256"})
        wait(lambda: tmux.header().startswith(" ACTIVE "), 60, "console up")
        wait(lambda: (query(db, "SELECT COUNT(*) FROM positions WHERE qty != 0") or 0) > 0, 120, "positions",
             interval=0.5)
        control = TmuxControl(tmux)
        for _ in range(trials):
            tmux.keys("C-x")
            wait(lambda: "EMERGENCY STOP" in tmux.run("capture-pane", "-p", "-t", "b"), 10, "stop modal")
            time.sleep(0.3)
            t0, w0 = time.monotonic(), time.time() * 1000
            control.command("send-keys -t b y")
            screen_ms.append(control.header_after(t0, " HALTED ", 15) * 1000)
            if verbose:
                print(f"trial sent at {w0:.1f} (wall ms): HALTED on screen after {screen_ms[-1]:.0f} ms", flush=True)
            stored = query(db, "SELECT MAX(ts) FROM audit_log WHERE action='trading_state.changed' "
                               "AND details LIKE '%\"to\": \"HALTED\"%'")
            stored_ms.append(stored - w0)
            wait(lambda: query(db, "SELECT COUNT(*) FROM commands WHERE status IN ('pending','running')") == 0, 30,
                 "stop finished", interval=0.2)
            tmux.keys("R")
            # the typed word goes in only once the modal shows: typed earlier (a slow console at load ~18), its
            # letters reached the desk screen's own key bindings and the resume never came
            wait(lambda: "RESUME TRADING" in tmux.run("capture-pane", "-p", "-t", "b"), 30, "resume modal",
                 interval=0.05)
            tmux.keys("RESUME", "Enter")
            # not timed: the engine applies the resume on its next poll; at load ~15 that took over 15 s once
            wait(lambda: tmux.header().startswith(" ACTIVE "), 60, "resumed", interval=0.05)
            time.sleep(2.0)
        control.close()
    except TimeoutError as exc:  # say what the screen showed: a timeout alone does not say which step stuck
        raise TimeoutError(f"{exc} (the console showed:\n{tmux.run('capture-pane', '-p', '-t', 'b')})") from None
    finally:
        tmux.kill()
        pid = None
        try:
            pid = query(db, "SELECT pid FROM engine_status WHERE id=1")
        except Exception:  # noqa: BLE001
            pass
        if pid:
            subprocess.run([str(QUANTDESK), "--state", str(db), "engine", "stop"], capture_output=True, timeout=40,
                           cwd=tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"trials": len(screen_ms), "screen_median_ms": statistics.median(screen_ms), "screen_max_ms": max(screen_ms),
            "stored_median_ms": statistics.median(stored_ms), "stored_max_ms": max(stored_ms)}


def main() -> None:
    """Run both benchmarks and print a Markdown table row set."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--only", choices=("cpu", "latency"), default=None)
    parser.add_argument("--console-cmd", default=str(QUANTDESK), help="the console to measure (default: quantdesk)")
    parser.add_argument("--verbose", action="store_true", help="print each latency trial")
    args = parser.parse_args()
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.1f}")
    print("| measurement | value |\n|---|---|")
    if args.only in (None, "cpu"):
        idle = idle_cpu(args.window, busy=False)
        print(f"| idle CPU, 4 Hz, 200 positions + 1,000 orders, nothing changing | "
              f"{idle['cpu_pct_of_core']:.1f}% of a core |")
        busy = idle_cpu(args.window, busy=True)
        print(f"| same desk, 20 order updates/s | {busy['cpu_pct_of_core']:.1f}% of a core |")
    if args.only in (None, "latency"):
        lat = latency(args.trials, args.console_cmd, args.verbose)
        print(f"| key-to-HALTED on screen (engine-confirmed), median / max of {lat['trials']} | "
              f"{lat['screen_median_ms']:.0f} / {lat['screen_max_ms']:.0f} ms |")
        print(f"| key-to-HALTED stored in state.db, median / max | {lat['stored_median_ms']:.0f} / "
              f"{lat['stored_max_ms']:.0f} ms |")
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
