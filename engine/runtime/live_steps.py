"""The live start's steps around protection, run by the engine service: re-arm every exchange position's protective
order first, then what a live start defers until protection is back (all markets, the strategy check), and the line
naming which instances trade on the exchange."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from engine.config import Settings
from engine.store.db import Store
from engine.store.ops import audit, raise_alert

log = logging.getLogger("quantdesk.engine")


def rearm_at_start(store: Store, exchange_broker: Any) -> None:
    """Protection first: every open exchange position gets its protective order back before anything else
    starts (the config stop levels; strategy levels replace them on the next check). Failures only alert: the
    start-up reconciliation right after retries."""
    try:
        done = exchange_broker.rearm()
    except Exception as exc:  # noqa: BLE001 - the full recovery below tries again
        raise_alert(store, "warning", "protect.rearm_failed", f"re-arming protection at start failed: "
                    f"{type(exc).__name__}: {exc}"[:500], {})
        return
    from engine import start_timeline

    start_timeline.mark("rearmed")
    timeline = start_timeline.summary()
    audit(store, "engine", "protection.rearmed", {**done, "timeline": timeline}, user="engine")
    log.info("protection at start, %.2f s after the process started: %s; start-up [wall s, cpu s]: %s",
             timeline["rearmed"][0], done, timeline)


def after_rearm(store: Store, settings: Settings, exchange_broker: Any) -> None:
    """What a live start defers until protection is back on the exchange: every market from the exchange when
    the re-arm used the desk's cached ones, and the strategy check (imports every strategy module) that
    `engine.runtime.main` skips for a live start. Either failing still stops the engine (exit 2, one line)."""
    from engine.execution.live_start import LiveStartError, load_all_markets
    from engine.runtime.preflight import check_startup

    if getattr(exchange_broker.exchange, "markets_from_cache", False):
        try:
            load_all_markets(exchange_broker.exchange, settings)
        except LiveStartError as exc:
            raise_alert(store, "critical", "engine.live_start", f"live start refused: {exc}", {})
            raise
    check_startup(settings)
    from engine import start_timeline

    start_timeline.mark("markets + strategy check")
    audit(store, "engine", "engine.start_timeline", start_timeline.summary(), user="engine")


def say_live_instances(store: Store, instances: Mapping[str, Any]) -> None:
    """A live engine names the instances that trade on the exchange, or says that none does."""
    from engine.execution.router import EXCHANGE_STAGES

    live = sorted(i.id for i in instances.values() if i.stage in EXCHANGE_STAGES)
    if not live:
        msg = ("started with --live but no instance is at stage live-small or live: nothing trades on the "
               "exchange (promote one with `quantdesk strategy promote ID --confirm`)")
        raise_alert(store, "warning", "engine.no_live_instance", msg, {"instances": sorted(instances)})
    else:
        msg = f"live instances on the exchange: {', '.join(live)}"
    audit(store, "engine", "engine.live_instances", {"live": live}, user="engine")
    log.warning(msg)
