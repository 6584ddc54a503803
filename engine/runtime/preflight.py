"""Checks that need more than the config file alone, run before the engine takes its lock or opens the store.

Alert channel URLs are checked here too (against apprise, after `${ENV}` expansion): a malformed or unknown channel
stops the engine naming `alerts.channels[i].url` and apprise's reason.

`engine.config` validates every value's range at load but is a leaf module: it cannot know which strategies exist or
whether a strategy's parameters fit its `Config`. These checks do, so a typo in a strategy name or parameter stops
the engine at start with one line per problem instead of failing on every tick.
"""

from __future__ import annotations

from engine.config import ConfigError, Settings


def startup_problems(settings: Settings) -> list[str]:
    """One line per strategy instance whose strategy is unknown or whose params do not fit it."""
    from engine.strategy.registry import available, load_strategy

    known = available()
    problems = []
    for inst_id, inst in settings.strategies.items():
        if inst.strategy not in known:
            problems.append(f"strategies.{inst_id}.strategy: must be one of {', '.join(known) or '(none found)'}, "
                            f"got {inst.strategy!r}")
            continue
        try:
            load_strategy(inst.strategy, inst.params)
        except (TypeError, ValueError) as exc:
            problems.append(f"strategies.{inst_id}.params: {exc}")
    if settings.alerts.channels:
        from engine.monitoring.alerts.channels import build_channels

        try:
            build_channels(settings.alerts)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def check_startup(settings: Settings) -> None:
    """Raise ConfigError listing every start-up problem; the engine refuses to start on any."""
    problems = startup_problems(settings)
    if problems:
        raise ConfigError("\n".join(problems), problems)
