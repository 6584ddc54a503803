"""The one-line screen switcher: which screen is showing and the key that opens each (no mouse needed)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

SCREENS: tuple[tuple[str, str, str], ...] = (
    ("desk", "1", "Desk"), ("strategies", "2", "Strategies"), ("research", "3", "Research"),
    ("models", "4", "Models"), ("jobs", "5", "Jobs"), ("data", "6", "Data"), ("alerts", "7", "Alerts"),
)


class NavBar(Static):
    """Shows every screen with its key; the current one highlighted."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $boost; }
    """

    def __init__(self, current: str) -> None:
        super().__init__(self._text(current))

    @staticmethod
    def _text(current: str) -> Text:
        parts: list[tuple[str, str] | str] = []
        for mode, key, label in SCREENS:
            style = "bold reverse" if mode == current else ""
            parts.append((f"{key} {label}", style))
            parts.append(" ")
        parts.append((" ^x STOP ", "bold white on red"))
        return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")
