"""Pool saved optuna_lab.py outputs: medians over all their seeds/markets, TPE-ahead counts and a sign test.

Run:  .venv/bin/python benchmarks/optuna_lab_pool.py out-0-4.txt out-5-19.txt ... [--tpe noprune] [--key oos_by_sharpe]

Reads the "per seed" lines the lab prints (strategy, sampler, seed, then one value per column named in the header
line), keeps the last line for each (strategy, sampler, seed), and prints per strategy: the number of seeds, the
median of `--key` for random and for the TPE variant, the median and mean (with its standard error) of the
paired differences, on how many seeds TPE is strictly ahead, and the two-sided exact sign-test p-value (ties
dropped). The lab prints per-seed values to 3 decimals, so a pooled median can differ from the lab's own median
line in the last digit.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path


def read_rows(paths: list[str]) -> dict[tuple[str, str, int], dict[str, float]]:
    """(strategy, sampler, seed) -> {column: value} from the lab's per-seed lines of every file."""
    rows: dict[tuple[str, str, int], dict[str, float]] = {}
    for path in paths:
        keys: list[str] = []
        for line in Path(path).read_text().splitlines():
            if line.startswith("per seed (strategy, sampler, seed, "):
                keys = line.split("seed, ", 1)[1].rstrip("):").split(", ")
                continue
            parts = line.split()
            if keys and len(parts) == 3 + len(keys) and parts[2].lstrip("-").isdigit():
                rows[(parts[0], parts[1], int(parts[2]))] = dict(zip(keys, map(float, parts[3:]), strict=True))
    return rows


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial sign-test p-value for wins vs losses (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def summary(rows: dict[tuple[str, str, int], dict[str, float]], tpe: str, key: str) -> list[str]:
    """One markdown row per strategy: n, medians, TPE ahead count and sign-test p."""
    out = ["| strategy | seeds | median random | median tpe | tpe - random | median paired diff "
           "| mean paired diff (SE) | tpe ahead | sign-test p |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for strategy in sorted({s for s, _, _ in rows}):
        seeds = sorted(k for s, m, k in rows if s == strategy and m == "random" and (s, tpe, k) in rows)
        if not seeds:
            continue
        rnd = [rows[(strategy, "random", k)][key] for k in seeds]
        tp = [rows[(strategy, tpe, k)][key] for k in seeds]
        wins = sum(t > r for t, r in zip(tp, rnd, strict=True))
        losses = sum(t < r for t, r in zip(tp, rnd, strict=True))
        mr, mt = statistics.median(rnd), statistics.median(tp)
        diffs = [t - r for t, r in zip(tp, rnd, strict=True)]
        se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
        out.append(f"| {strategy} | {len(seeds)} | {mr:.2f} | {mt:.2f} | {mt - mr:+.2f} | "
                   f"{statistics.median(diffs):+.2f} | {statistics.fmean(diffs):+.2f} ({se:.2f}) | "
                   f"{wins}/{len(seeds)} | "
                   f"{sign_test(wins, losses):.3f} |")
    return out


def main() -> None:
    """Print the pooled summary of the given lab outputs."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--tpe", default="noprune", help="the lab's TPE variant to compare with random")
    ap.add_argument("--key", default="oos_by_sharpe", help="column to compare (e.g. is_best_robust)")
    args = ap.parse_args()
    print("\n".join(summary(read_rows(args.files), args.tpe, args.key)))


if __name__ == "__main__":
    main()
