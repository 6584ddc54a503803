"""Confirmations: one-key modal (strategy actions), typed modal (resume), the emergency stop overlay."""

from __future__ import annotations

from typing import Any, Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.markup import escape
from textual.widgets import Input, Label, Static

from console.widgets.nav import hint


class PausedByStopConfirm:
    """Mixin for screens: while the emergency-stop confirmation is open on them, their own actions are disabled, so
    the overlay is modal (only y / n / esc, and the stop key itself, do anything)."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Disable this screen's actions while a StopConfirmBar is mounted on it."""
        return not self.query("#stop-confirm")  # type: ignore[attr-defined]


class ConfirmKey(PausedByStopConfirm, ModalScreen[bool]):
    """Ask a yes/no question answered by one key: y confirms, n or escape cancels."""

    DEFAULT_CSS = """
    ConfirmKey { align: center middle; }
    ConfirmKey > Vertical { width: 64; max-width: 95%; height: auto; border: thick $warning; padding: 1 2;
                            background: $surface; }
    ConfirmKey.-danger > Vertical { border: thick $error; }
    ConfirmKey .prompt { text-style: bold; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Confirm", id="confirm.yes", tooltip="Confirm the action"),
        Binding("n,escape", "answer(False)", "Cancel", id="confirm.no", tooltip="Cancel; nothing is sent"),
    ]

    def __init__(self, title: str, body: str, *, danger: bool = False) -> None:
        super().__init__(classes="-danger" if danger else None)
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        """Title, explanation and the key hint."""
        with Vertical():
            yield Label(self.title_text, classes="prompt")
            yield Static(self.body)
            yield Static(f"[b]{escape(hint(self, 'confirm.yes', 'y'))}[/b] confirm    "
                         f"[b]{escape(hint(self, 'confirm.no', 'n / esc'))}[/b] cancel")

    def action_answer(self, yes: bool) -> None:
        """Close the modal with the answer."""
        self.dismiss(yes)


class TypedConfirm(PausedByStopConfirm, ModalScreen[bool]):
    """Confirm by typing a word exactly (resume from HALTED); escape cancels."""

    DEFAULT_CSS = """
    TypedConfirm { align: center middle; }
    TypedConfirm > Vertical { width: 64; max-width: 95%; height: auto; border: thick $warning; padding: 1 2;
                              background: $surface; }
    TypedConfirm #typed-error { color: $error; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="typed.cancel", tooltip="Cancel; nothing is sent")]

    def __init__(self, title: str, body: str, word: str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.word = word

    def compose(self) -> ComposeResult:
        """Title, explanation and the input for the confirmation word."""
        with Vertical():
            yield Label(self.title_text, classes="prompt")
            yield Static(self.body)
            yield Static(f"Type [b]{self.word}[/b] and press enter ([b]{escape(hint(self, 'typed.cancel', 'esc'))}[/b] "
                         "cancels):")
            yield Input(placeholder=self.word, id="typed-input")
            yield Static("", id="typed-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Accept only the exact word."""
        if event.value.strip() == self.word:
            self.dismiss(True)
        else:
            self.query_one("#typed-error", Static).update(f"type {self.word} exactly (or esc to cancel)")

    def action_cancel(self) -> None:
        """Close without confirming."""
        self.dismiss(False)


class InfoModal(PausedByStopConfirm, ModalScreen[None]):
    """A read-only panel (a tearsheet's summary, an alert's whole message); c copies its path or text, esc closes."""

    DEFAULT_CSS = """
    InfoModal { align: center middle; }
    InfoModal > Vertical { width: 90%; height: 80%; border: thick $primary; padding: 0 1; background: $surface; }
    InfoModal #info-body { height: 1fr; overflow-y: auto; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Close", id="info.close", tooltip="Close this panel"),
        Binding("c", "copy", "Copy", id="info.copy",
                tooltip="Copy the path (or the text) to the clipboard (OSC 52, works over SSH)"),
    ]

    def __init__(self, title: str, path: str, body: str, *, copy_text: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.path = path
        self.body = body
        self.copy_text = copy_text if copy_text is not None else path

    def compose(self) -> ComposeResult:
        """Title, path (when there is one) and body; data is never read as markup."""
        with Vertical():
            yield Label(self.title_text, classes="prompt", markup=False)
            if self.path:
                yield Static(f"path: {self.path}", markup=False)
            yield Static(self.body, id="info-body", markup=False)

    def action_copy(self) -> None:
        """Copy the path (or the text) to the terminal clipboard."""
        self.app.copy_to_clipboard(self.copy_text)
        self.notify(f"copied {self.copy_text[:60]}", markup=False)

    def action_close(self) -> None:
        """Close the panel."""
        self.dismiss(None)


class StopConfirmBar(Static, can_focus=True):
    """The emergency stop's one-key confirmation as an overlay on the current screen (modal or not).

    An overlay rather than a pushed screen: closing a modal screen restyles and repaints the whole desk, which
    delayed the engine-confirmed HALTED by hundreds of milliseconds; removing an overlay repaints only its area.
    """

    DEFAULT_CSS = """
    StopConfirmBar {
        overlay: screen; position: absolute; offset: 4 3; width: 72; max-width: 95%; height: auto;
        border: thick $error; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "HALT + FLATTEN", id="stop.yes", tooltip="Confirm the emergency stop"),
        Binding("n,escape", "answer(False)", "Cancel", id="stop.no", tooltip="Cancel; nothing is sent"),
    ]

    def __init__(self, on_answer: Callable[[bool], None], restore_focus: Any = None) -> None:
        super().__init__(id="stop-confirm")
        self.on_answer = on_answer
        self.restore_focus = restore_focus
        self.sent = False

    def on_mount(self) -> None:
        """The question, with the keys of the live keymap."""
        self.ask()

    def ask(self) -> None:
        """Show the question (again: the stop key pressed while this bar says STOP SENT asks for a second stop)."""
        self.sent = False
        self.update("[b red]EMERGENCY STOP[/]\nHALT trading and FLATTEN: cancel every open order and close every "
                    "position with reduce-only orders. The header shows the stop once the engine has it.\n"
                    f"[b]{escape(hint(self, 'stop.yes', 'y'))}[/b] confirm    "
                    f"[b]{escape(hint(self, 'stop.no', 'n / esc'))}[/b] cancel")

    def action_answer(self, yes: bool) -> None:
        """Answer once. y sends the stop and the bar stays until the engine answers (closing it at once would repaint
        the whole desk while the stop is being written); n / esc close it (after y, only close it)."""
        if self.sent:
            if not yes:
                self.close()
            return
        self.on_answer(yes)
        if not yes:
            self.close()
            return
        self.sent = True  # the text changes when HALTED is stored (show_persisted): no repaint races the write

    def show_persisted(self) -> None:
        """Say that HALTED is in state.db and the engine is being asked to cancel and close everything."""
        self.update("[b red]STOP SENT[/] HALTED is stored; the engine cancels every order and closes every "
                    f"position. This closes when the engine answers.\n[b]{escape(hint(self, 'stop.no', 'esc'))}[/b] "
                    "close")

    def close(self) -> None:
        """Remove the bar and give focus back to where it was."""
        target = self.restore_focus
        self.remove()
        if target is not None and target.is_attached:
            target.focus()
