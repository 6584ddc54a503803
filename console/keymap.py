"""User key remapping: `[console] keys = {action_id = "key"}` in quantdesk.toml becomes Textual's keymap.

Every console Binding has an `id`; this module collects them so a typo in the config is reported by name instead
of silently ignored, and so the README and help panel can list every binding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from textual.binding import Binding


@dataclass(frozen=True)
class BindingInfo:
    """One console binding as documented: id, default key, description, where it applies."""

    id: str
    key: str
    description: str
    scope: str
    tooltip: str


def _binding_sets() -> list[tuple[str, Iterable[object]]]:
    from console.app_bindings import APP_BINDINGS
    from console.screens import registry
    from console.widgets.keyed_table import KeyedTable
    from console.widgets.modals import ConfirmKey, InfoModal, StopConfirmBar, TypedConfirm

    sets: list[tuple[str, Iterable[object]]] = [("app", APP_BINDINGS)]
    sets += [(mode, cls.BINDINGS) for mode, cls in registry.SCREEN_CLASSES.items()]
    sets += [(scope, cls.BINDINGS) for scope, cls in (("stop confirm", StopConfirmBar), ("confirm", ConfirmKey),
                                                       ("typed confirm", TypedConfirm), ("info", InfoModal),
                                                       ("tables", KeyedTable))]
    return sets


def all_bindings() -> list[BindingInfo]:
    """Every console binding with an id, in app-then-screen order."""
    out: list[BindingInfo] = []
    for scope, bindings in _binding_sets():
        for item in bindings:
            if isinstance(item, Binding) and item.id:
                out.append(BindingInfo(item.id, item.key, item.description, scope, item.tooltip))
    return out


def build_keymap(keys: Mapping[str, str], known: Iterable[str] | None = None) -> tuple[dict[str, str], list[str]]:
    """Split configured keys into a Textual keymap (known ids) and the list of unknown ids."""
    ids = set(known) if known is not None else {b.id for b in all_bindings()}
    keymap = {k: v for k, v in keys.items() if k in ids}
    unknown = sorted(k for k in keys if k not in ids)
    return keymap, unknown


def key_hints(keymap: Mapping[str, str], display: Callable[[Binding], str]) -> dict[str, str]:
    """Binding id -> its live key(s) as the footer shows them ('^x', 'f12', 'n / esc'): every hint in the console's
    text comes from here, so a remapped key is never advertised under its old name."""
    out: dict[str, str] = {}
    for b in all_bindings():
        keys = [k.strip() for k in keymap.get(b.id, b.key).split(",") if k.strip()]
        out[b.id] = " / ".join(display(Binding(k, "")) for k in keys)
    return out


def bindings_markdown() -> str:
    """A Markdown table of every binding (for the README and docs)."""
    lines = ["| key | action id | what | where |", "|---|---|---|---|"]
    for b in all_bindings():
        lines.append(f"| `{b.key}` | `{b.id}` | {b.tooltip or b.description} | {b.scope} |")
    return "\n".join(lines)
