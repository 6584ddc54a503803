"""The console app's own key bindings (screens keep theirs): one list the app uses and the keymap documents,
so the keymap never imports the app."""

from __future__ import annotations

from textual.binding import Binding

EMERGENCY_KEY = "ctrl+x"  # not taken by tmux (ctrl+b) or screen (ctrl+a); priority beats a focused Input's cut

APP_BINDINGS: list[Binding] = [
    Binding(EMERGENCY_KEY, "emergency_stop", "STOP", id="emergency-stop", priority=True,
            tooltip="Emergency stop: HALT + FLATTEN (asks to confirm with one key)"),
    Binding("1", "switch_mode('desk')", "Desk", id="screen.desk", show=False, tooltip="Show the desk"),
    Binding("2", "switch_mode('strategies')", "Strategies", id="screen.strategies", show=False,
            tooltip="Leaderboard, lifecycle stage, drift; pause/resume/promote/demote"),
    Binding("3", "switch_mode('research')", "Research", id="screen.research", show=False,
            tooltip="Backtest runs and trials with DSR; tearsheets"),
    Binding("4", "switch_mode('models')", "Models", id="screen.models", show=False,
            tooltip="Model registry, champion/challenger, retrain, rollback"),
    Binding("5", "switch_mode('jobs')", "Jobs", id="screen.jobs", show=False,
            tooltip="Scheduler jobs: next run, last result, errors"),
    Binding("6", "switch_mode('data')", "Data", id="screen.data", show=False,
            tooltip="Data coverage, freshness, gaps and quarantine per series"),
    Binding("7", "switch_mode('alerts')", "Alerts", id="screen.alerts", show=False,
            tooltip="Alerts (filter, acknowledge) and the audit log"),
    Binding("f1", "toggle_help", "Help", id="help", tooltip="Show or hide the key bindings panel"),
    Binding("q", "quit", "Quit", id="quit", tooltip="Quit the console; the engine keeps running"),
]
