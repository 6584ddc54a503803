"""Where the ML artefacts live on disk; a leaf (pathlib and the config only), so the engine's start-up hardening can
find the models folder without importing pandas and the training stack."""

from __future__ import annotations

from pathlib import Path

from engine.config import Settings


def models_dir(settings: Settings) -> Path:
    """Where artefacts live: ml.models_dir, relative paths taken beside state.db."""
    path = Path(settings.ml.models_dir).expanduser()
    return path if path.is_absolute() else Path(settings.store.path).expanduser().resolve().parent / path
