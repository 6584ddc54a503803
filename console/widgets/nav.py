"""The one-line screen switcher: which screen is showing and the key that opens each (no mouse needed)."""

from __future__ import annotations

from rich.text import Text
from textual.dom import DOMNode
from textual.widgets import Static

SCREENS: tuple[tuple[str, str, str], ...] = (
    ("desk", "1", "Desk"), ("strategies", "2", "Strategies"), ("research", "3", "Research"),
    ("models", "4", "Models"), ("jobs", "5", "Jobs"), ("data", "6", "Data"), ("alerts", "7", "Alerts"),
)


def hint(widget: DOMNode, binding_id: str, fallback: str) -> str:
    """The live key of a binding for a widget's text (the app's keymap; the default key outside the console app)."""
    lookup = getattr(widget.app, "key_hint", None)
    return lookup(binding_id, fallback) if lookup is not None else fallback


class NavBar(Static):
    """Shows every screen with its key and the emergency stop key, as the live keymap has them."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $boost; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def on_mount(self) -> None:
        """Draw with the keys of the live keymap."""
        self.update(self._text())

    def _text(self) -> Text:
        parts: list[tuple[str, str] | str] = []
        for mode, key, label in SCREENS:
            style = "bold reverse" if mode == self.current else ""
            parts.append((f"{hint(self, f'screen.{mode}', key)} {label}", style))
            parts.append(" ")
        parts.append((f" {hint(self, 'emergency-stop', '^x')} STOP ", "bold white on red"))
        return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")
