"""Live protective orders take the strategy's own stop levels (issue 16 on issue 13's exchange-side protection).

The engine wires `engine.trading.stops.protection_spec_of` into the exchange broker's Protector: a strategy with a
fixed Stops spec gets its stop / take-profit fractions on the twin; a vol-scaled one gets the fractions the trader
armed at the trade's entry (per symbol); a strategy without stops keeps the `[risk] protective_*` default."""

from __future__ import annotations

import pytest

from engine.execution.ccxt_broker import CcxtBroker
from engine.execution.orders import OrderRequest, get_order
from engine.execution.protection import ProtectionSpec, Protector, parse_protective_id
from engine.strategy.stops import Stops
from engine.trading.stops import Armed, StopWatch, protection_spec_of

SPOT = "BTC/USDT"
DEFAULT = ProtectionSpec(0.05, None)


def _broker(store, twin, stops_of, watch):  # noqa: ANN001, ANN202
    broker = CcxtBroker(store, twin.exchange(), max_retries=1, symbols=[SPOT], sleep=lambda s: None)
    broker.exchange.load_markets()
    broker.protector = Protector(store, broker, protection_spec_of(watch, stops_of, lambda _i, _s=None: DEFAULT),
                                 limit_offset=0.01)
    return broker


def _protective(twin, kind: str) -> list[dict]:  # noqa: ANN001
    return [o for o in twin.exchange().fetch_open_orders(SPOT)
            if (parse_protective_id(str(o["clientOrderId"])) or ("", ""))[1] == kind]


def _stop_trigger(twin) -> float:  # noqa: ANN001
    (o,) = _protective(twin, "stop")
    return float(o["triggerPrice"] or o["stopPrice"])


def _buy(broker, coid: str) -> float:  # noqa: ANN001
    broker.submit(OrderRequest(instance_id="ls", symbol=SPOT, side="buy", qty=0.02, client_order_id=coid,
                               reason="test trade"))
    return float(get_order(broker.store, coid)["avg_price"])


@pytest.mark.parametrize("spec,armed,expected_frac", [
    (Stops(stop_loss=0.02, take_profit=0.04), None, 0.02),
    (Stops(stop_loss=3.0, scale="atr", window=14), Armed(1.0, 0.013, 0.0, 0), 0.013),
    (None, None, 0.05),
])
def test_live_stop_rests_at_the_strategy_level(store, twin, spec, armed, expected_frac) -> None:  # noqa: ANN001
    watch = StopWatch(store, "twin")
    if armed is not None:
        watch.armed[("ls", SPOT)] = armed  # what Trader.tick arms when it opens the trade
    broker = _broker(store, twin, lambda _inst: spec, watch)
    entry = _buy(broker, "qd-ls-s1")
    assert _stop_trigger(twin) == pytest.approx(entry * (1.0 - expected_frac), rel=1e-4)
    takes = _protective(twin, "take")  # spot: the strategy's take-profit rests with the stop as one OCO list
    if spec is not None and spec.take_profit:
        (take,) = takes
        assert take["info"]["type"] == "LIMIT_MAKER" and str(take["info"]["orderListId"]) != "-1"
        assert float(take["price"]) == pytest.approx(entry * (1.0 + spec.take_profit), rel=1e-4)
    else:
        assert takes == []


def test_spec_of_falls_back_to_the_config_where_the_strategy_sets_no_stop(store) -> None:  # noqa: ANN001
    watch = StopWatch(store, "twin")
    take_only = protection_spec_of(watch, lambda _i: Stops(take_profit=0.04), lambda _i, _s=None: DEFAULT)
    assert take_only("ls", SPOT) == ProtectionSpec(0.05, 0.04)  # every live position rests with a stop
    unarmed_vol = protection_spec_of(watch, lambda _i: Stops(stop_loss=2.0, scale="vol"), lambda _i, _s=None: DEFAULT)
    assert unarmed_vol("ls", SPOT) == DEFAULT  # entered before this engine started: the config levels
