#!/usr/bin/env bash
# Rehearse the live path on the exchange twin, end to end, with the real CLI (issue 13):
#   twin up -> paper engine earns a record -> promote `ls` to live-small (gates lowered by config, confirmed) ->
#   `quantdesk engine --live --detach --confirm-live` -> the twin sees orders of `ls` only, none of the paper `pp` ->
#   kill -9 -> restart live -> `quantdesk flatten` -> the twin account is flat (no position, no open order, dust only).
# Usage: benchmarks/rehearse_live.sh [workdir]   (needs only 127.0.0.1; prints PASS/FAIL lines, exits non-zero on FAIL)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
WORK="${1:-$(mktemp -d /tmp/quantdesk-rehearsal.XXXXXX)}"
mkdir -p "$WORK"
cd "$WORK"
qd() { PYTHONPATH="$REPO" "$PY" -c "from console.cli import main; main()" --config "$WORK/quantdesk.toml" --state "$WORK/state.db" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
cleanup() {
  [ -n "${TWIN_PID:-}" ] && kill "$TWIN_PID" 2>/dev/null || true
  PID="$(cat "$WORK/state.db.lock" 2>/dev/null || true)"; [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
}
trap cleanup EXIT

# 1. the twin, keys generated here and handed over in the environment only (never on a command line)
export QUANTDESK_VENUE_API_KEY="$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
export QUANTDESK_VENUE_API_SECRET="$("$PY" -c 'import secrets; print(secrets.token_hex(32))')"
PYTHONPATH="$REPO" "$PY" -c "from console.cli import main; main()" venue serve --port 0 --state "$WORK/venue.db" \
  --speed 60 > "$WORK/twin.out" 2> "$WORK/twin.err" &
TWIN_PID=$!
for _ in $(seq 100); do [ -s "$WORK/twin.out" ] && break; sleep 0.2; done
URL="$(head -1 "$WORK/twin.out")"
case "$URL" in http://127.0.0.1:*) echo "twin at $URL";; *) fail "twin did not start: $(cat "$WORK/twin.err")";; esac

# 2. config: data and broker on the twin, one paper and one to-be-live-small instance, gates lowered for the rehearsal.
# Both trade Bar Cycle, a user strategy in ./user_strategies (long 3 bars, flat 3, whatever the market does): the
# rehearsal checks routing, recovery and flatten, and a market strategy is flat or short (held flat on spot, where
# the exchange cannot sell what the account does not hold) for long stretches at some hours of the simulated market.
mkdir -p "$WORK/user_strategies"
cp "$REPO/tests/support/strategies/rhythms.py" "$WORK/user_strategies/rhythms.py"
cat > "$WORK/quantdesk.toml" <<EOF
[data]
source = "ccxt:binance"
symbols = ["BTC/USDT"]
timeframes = ["1m"]
[exchange]
base_url = "$URL"
[simulator]
speed = 60.0
[runtime]
equity_interval_s = 1.0
monitor_interval_s = 2.0
heartbeat_interval_s = 0.5
[ml]
train_at_start = false
[execution]
rebalance_band = 0.0
min_order_notional = 1.0
reconcile_interval_s = 2.0
flatten_round_wait_s = 0.2
[lifecycle]
min_paper_days = 0.0
min_paper_trades = 1
min_dsr = 0.0
max_drift_bps = 1000000.0
live_small_fraction = 0.1
[strategies.pp]
strategy = "bar_cycle"
symbols = ["BTC/USDT"]
capital = 20000.0
[strategies.ls]
strategy = "bar_cycle"
symbols = ["BTC/USDT"]
capital = 20000.0
stage = "live"   # config may say so; it is seeded at paper all the same
EOF

# 3. paper first: both instances trade on paper until `ls` passes the (lowered) gates, then promote with confirmation
qd engine --detach > /dev/null
PROMOTED=""
for _ in $(seq 60); do
  if qd strategy promote ls --confirm > "$WORK/promote.out" 2>&1; then PROMOTED=1; break; fi
  sleep 3
done
[ -n "$PROMOTED" ] || fail "ls never passed the lowered gates: $(tail -1 "$WORK/promote.out")"
echo "PASS: ls promoted to live-small ($(tail -1 "$WORK/promote.out"))"
qd engine stop > /dev/null   # ls's paper positions are closed on paper by the live engine before it trades live

# 4. live: the engine gets the twin's keys as QUANTDESK_API_KEY / QUANTDESK_API_SECRET in its environment only
export QUANTDESK_API_KEY="$QUANTDESK_VENUE_API_KEY" QUANTDESK_API_SECRET="$QUANTDESK_VENUE_API_SECRET"
qd engine --live --detach --confirm-live 2> "$WORK/prompt.txt" > /dev/null || fail "live start: $(tail -3 "$WORK/prompt.txt")"
grep -q "ls .*stage live-small .*broker exchange:binance" "$WORK/prompt.txt" || fail "prompt does not show ls live-small"
grep -q "pp .*stage paper .*broker paper" "$WORK/prompt.txt" || fail "prompt does not show pp on paper"
if grep -q "$QUANTDESK_API_SECRET" "$WORK/prompt.txt"; then fail "the prompt printed the secret"; fi
echo "PASS: LIVE prompt names exchange, account, stages, brokers, capital, risk budget and key variable names"
twin_orders() {
  PYTHONPATH="$REPO" "$PY" - "$URL" <<'PYEOF'
import os, sys
from engine.data.ccxt_urls import point_at
import ccxt
ex = point_at(ccxt.binance({"apiKey": os.environ["QUANTDESK_API_KEY"], "secret": os.environ["QUANTDESK_API_SECRET"],
                            "options": {"fetchMarkets": {"types": ["spot", "linear"]}, "fetchCurrencies": False,
                                        "fetchMargins": False}}), sys.argv[1])
print(" ".join(sorted({o["clientOrderId"][:6] for o in ex.fetch_orders("BTC/USDT")})))
PYEOF
}
SEEN=""
for _ in $(seq 60); do SEEN="$(twin_orders 2>> "$WORK/twin_orders.err" || true)"; [ -n "$SEEN" ] && break; sleep 2; done
[ "$SEEN" = "qd-ls-" ] || fail "twin orders by client-id prefix: '$SEEN' (expected only qd-ls-)"
qd venue status --state "$WORK/venue.db" --json > "$WORK/venue_status.json"
echo "PASS: the twin holds orders of the live-small instance only ($SEEN); venue status: $(head -c 200 "$WORK/venue_status.json")"

# 5. kill -9 mid-flight, restart live, flatten, and find the twin flat
kill -9 "$(cat "$WORK/state.db.lock")"
sleep 1
qd engine --live --detach --confirm-live 2> /dev/null > /dev/null || fail "restart after kill -9"
qd flatten --json > "$WORK/flatten.json" || fail "flatten: $(cat "$WORK/flatten.json")"
FLAT="$(qd venue status --state "$WORK/venue.db" --json | "$PY" -c '
import json, sys
s = json.load(sys.stdin)
btc = s["balances"].get("BTC", 0.0)
print("flat" if btc < 1e-5 and not s["positions"] and not s["open_orders"] else f"NOT FLAT {s}")')"
[ "$FLAT" = "flat" ] || fail "twin account after flatten: $FLAT"
echo "PASS: after kill -9, restart and flatten the twin account is flat ($(head -c 160 "$WORK/flatten.json"))"
qd engine stop > /dev/null
echo "rehearsal done in $WORK"
