#!/usr/bin/env bash
# Creates one venv per backtest peer under .bench-venvs/ (git-ignored) with uv from PyPI, for bench_peers.py.
# Each peer lives in its own venv so its pins (numpy, pandas, numba) never touch the project's .venv, and each runs
# in a subprocess from that venv. A peer that cannot be installed is recorded in .bench-venvs/NAME.failed with uv's
# last lines, and the benchmark reports it as "not installed" with that reason instead of stopping.
# Usage: benchmarks/peers/setup.sh [peer ...]   (default: all; peers: vectorbt nautilus jesse)
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DIR="$ROOT/.bench-venvs"
UV="$ROOT/.venv/bin/uv"
mkdir -p "$DIR"

# nautilus_trader publishes its newest wheels for CPython >= 3.12 only (1.221 is the last one for 3.11): use a 3.12+
# interpreter when the machine has one, else the project's 3.11 (and so an older nautilus).
pick_python() {
  for v in "$@"; do
    for cand in "python$v" "$HOME/.pyenv/versions/$v"*/bin/python3; do
      p=$(command -v "$cand" 2>/dev/null) || continue
      "$p" -c 'import sys' 2>/dev/null && { echo "$p"; return; }
    done
  done
  echo "$ROOT/.venv/bin/python"
}

install() {  # name python packages...
  local name=$1 py=$2; shift 2
  local venv="$DIR/$name" want="$*"
  if [ -f "$venv/.ok" ] && [ "$(cat "$venv/.ok")" = "$want" ]; then echo "peer $name: ready ($want)"; return; fi
  rm -rf "$venv" "$DIR/$name.failed"
  echo "peer $name: installing $want with $("$py" -V 2>&1)"
  if "$UV" venv --quiet --python "$py" "$venv" >"$DIR/$name.log" 2>&1 \
     && "$UV" pip install --quiet --compile-bytecode --python "$venv/bin/python" "$@" >>"$DIR/$name.log" 2>&1; then
    echo "$want" >"$venv/.ok"
  else
    tail -5 "$DIR/$name.log" >"$DIR/$name.failed"
    echo "peer $name: FAILED (see $DIR/$name.failed)" >&2
  fi
}

peers=${*:-vectorbt nautilus jesse}
for peer in $peers; do
  case $peer in
    vectorbt) install vectorbt "$ROOT/.venv/bin/python" "vectorbt==1.2.*" "vectorbt-rust==1.2.*" psutil ;;
    nautilus) install nautilus "$(pick_python 3.13 3.12)" "nautilus-trader" psutil ;;
    jesse)    install jesse "$(pick_python 3.12 3.13)" "jesse" psutil ;;
    *) echo "unknown peer: $peer (known: vectorbt nautilus jesse)" >&2; exit 2 ;;
  esac
done
