"""`quantdesk backtest <strategy>` and `quantdesk optimize <strategy>`: research runs with a rich summary and an HTML
tearsheet. Heavy imports (pandas, numba, joblib) happen inside the commands."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from console.cli.common import settings_of

_SUMMARY_KEYS = ["total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
                 "max_drawdown_bars", "trades", "hit_rate", "profit_factor", "turnover", "exposure", "fees",
                 "psr", "dsr", "n_trials"]


def _metrics_table(title: str, metrics: dict, keys: list[str]) -> Any:
    from rich.table import Table

    from engine.backtest.tearsheet import fmt

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("metric", style="dim")
    table.add_column("value", justify="right")
    for key in keys:
        if key in metrics:
            table.add_row(key, fmt(key, metrics[key]))
    return table


def _open(ctx: typer.Context) -> tuple[Any, Any]:
    from engine.store import open_store

    settings = settings_of(ctx)
    return settings, open_store(settings.store_url())


def _load(ctx: typer.Context, console: Any, strategy: str, params: list[str], symbols: Optional[str],
          timeframe: Optional[str], since: Optional[str], until: str, source: Optional[str], pull: bool,
          exchange: Optional[str] = None) -> tuple[Any, Any, Any]:
    """Settings, store and research data, with a progress bar while missing history is pulled."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.backtest.research import load_research, parse_params

    settings, store = _open(ctx)
    syms = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("loading history", total=1)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=f"pulling {what}", completed=done, total=max(total, 1))

        try:
            data = load_research(settings, store, strategy, parse_params(params), syms, timeframe, since, until,
                                 source, pull=pull, progress=progress, exchange=exchange)
        except (ValueError, KeyError) as exc:
            store.dispose()
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
    return settings, store, data


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf as null, numpy scalars as numbers, nested containers cleaned."""
    import math

    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def backtest_json(result: Any, data: Any, path: Any) -> str:
    """ONE JSON object for scripts: headline numbers, trial count, lookahead verdict, data provenance, report."""
    import json

    m = result.metrics
    la = result.lookahead
    out = {"strategy": result.strategy, "params": result.params, "symbols": list(data.spec.symbols),
           "timeframe": data.spec.timeframe, "final_equity": m["final_equity"], "total_return": m["total_return"],
           "trades": m["trades"], "sharpe": m["sharpe"], "psr": m["psr"], "dsr": m["dsr"],
           "dsr_note": m.get("dsr_note"), "n_trials": m["n_trials"], "n_trials_by_strategy": m["n_trials_by_strategy"],
           "trial_family": m["trial_family"], "dsr_conventions": m["dsr_conventions"],
           "lookahead": None if la is None else {"ok": la.ok, "result": "passed" if la.ok else "FAILED",
                                                 "summary": la.summary()},
           "data": data.provenance(), "synthetic": data.synthetic, "dataset_hash": result.dataset_hash,
           "report": str(path), "metrics": m}
    return json.dumps(_clean(out))


def _print_backtest(console: Any, strategy: str, result: Any, data: Any, path: Any) -> None:
    """The human summary: FAILED first, then provenance, metrics, DSR with N by strategy, tearsheet path."""
    m = result.metrics
    if result.lookahead is not None and not result.lookahead.ok:
        console.print(f"[bold red]FAILED: lookahead check — {result.lookahead.summary()}. The results below use "
                      "future data; this trial is marked and never counted, ranked or promoted.[/]")
    idx = result.equity.index
    console.print(f"[bold]{strategy}[/] {', '.join(data.spec.symbols)} {data.spec.timeframe} "
                  f"{idx[0]:%Y-%m-%d} to {idx[-1]:%Y-%m-%d} ({len(idx):,} bars) from {data.exchange}")
    if data.synthetic:
        console.print("[yellow]synthetic data: simulator bars, not a market; these numbers promise nothing[/]")
    if data.resample_rule:
        console.print(f"{data.resample_rule} ({data.resample_dropped} incomplete buckets dropped)", highlight=False)
    console.print(_metrics_table("metrics", m, _SUMMARY_KEYS))
    if result.lookahead is not None:
        style = "green" if result.lookahead.ok else "bold red"
        console.print(f"lookahead check [{style}]{result.lookahead.summary()}[/]")
    by = ", ".join(f"{k} {v:,}" for k, v in m["n_trials_by_strategy"].items())
    dsr = f"{m['dsr']:.3f}" if m["dsr"] == m["dsr"] else f"n/a ({m.get('dsr_note', 'undefined')})"
    console.print(f"DSR {dsr} over {m['n_trials']:,} trials ({by}) in family {m['trial_family']} on dataset "
                  f"{result.dataset_hash[:12]}", highlight=False)
    console.print(f"tearsheet: {path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `backtest` and `optimize` to the root app."""

    @app.command()
    def backtest(ctx: typer.Context,
                 strategy: str = typer.Argument(..., help="strategy name, e.g. quantum_momentum or macro_trend"),
                 symbols: Optional[str] = typer.Option(None, "--symbols", "-s", help="comma-separated symbols "
                                                       "(default: data.symbols)"),
                 timeframe: Optional[str] = typer.Option(None, "--timeframe", "-t", help="bar size (default: the "
                                                         "strategy's)"),
                 since: Optional[str] = typer.Option(None, "--since", help="look-back like 365d, or a start date "
                                                     "(default: the whole stored series; 365d from a source)"),
                 until: str = typer.Option("now", "--until", help="end date (default: the end of the data)"),
                 source: Optional[str] = typer.Option(None, "--source", help="sim | ccxt:<id> | csv:<path> "
                                                      "(default: stored bars when state.db has them, else sim)"),
                 exchange: Optional[str] = typer.Option(None, "--exchange", help="which stored exchange's bars, "
                                                        "when several hold the symbols"),
                 trial_family: Optional[str] = typer.Option(None, "--trial-family", help="name the research "
                                                            "question the DSR deflates over (default: every "
                                                            "configuration ever tried on this dataset)"),
                 param: List[str] = typer.Option([], "--param", "-p", help="parameter override key=value"),
                 sizer: str = typer.Option("fixed", "--sizer", help="fixed | vol_target"),
                 stop_loss: Optional[float] = typer.Option(None, "--stop-loss", help="fraction, e.g. 0.05"),
                 take_profit: Optional[float] = typer.Option(None, "--take-profit", help="fraction, e.g. 0.1"),
                 max_bars: Optional[int] = typer.Option(None, "--max-bars", help="time barrier in bars"),
                 lookahead: bool = typer.Option(True, "--lookahead/--no-lookahead", help="run the lookahead check"),
                 pull: bool = typer.Option(True, "--pull/--no-pull", help="pull missing history into state.db"),
                 out: Optional[str] = typer.Option(None, "--out", "-o", help="tearsheet path (.html)"),
                 json_out: bool = typer.Option(False, "--json", help="print one JSON object for scripts")) -> None:
        """Backtest a strategy, record it as a trial, print metrics (with DSR) and write an HTML tearsheet.

        Exits 1 when the lookahead check FAILED (the trial is marked and never counted or ranked)."""
        from rich.console import Console

        from engine.backtest.engine import Barriers, run_backtest
        from engine.backtest.registry import set_report_path
        from engine.backtest.research import report_path
        from engine.backtest.sizing import SIZERS
        from engine.backtest.tearsheet import write_tearsheet

        console = Console(stderr=json_out)
        if sizer not in SIZERS:
            typer.secho(f"error: --sizer must be one of {', '.join(SIZERS)}, got {sizer!r}", fg="red", err=True)
            raise typer.Exit(2)
        settings, store, data = _load(ctx, console, strategy, param, symbols, timeframe, since, until, source,
                                      pull, exchange)
        try:
            barriers = Barriers(stop_loss, take_profit, max_bars)
            strat = data.strategy_cls(**data.params)
            with console.status("backtesting"):
                result = run_backtest(strat, data.panel, settings, sizer=SIZERS[sizer](), barriers=barriers,
                                      store=store, lookahead=lookahead, timeframe=data.spec.timeframe,
                                      trial_family=trial_family)
            path = write_tearsheet(result, report_path(settings, "backtest", strategy, out), data.provenance())
            if result.run_id is not None:
                set_report_path(store, result.run_id, str(path.resolve()))
        except ValueError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        finally:
            store.dispose()
        failed = result.lookahead is not None and not result.lookahead.ok
        if json_out:
            typer.echo(backtest_json(result, data, path))
        else:
            _print_backtest(console, strategy, result, data, path)
        if failed:
            raise typer.Exit(1)

    @app.command()
    def optimize(ctx: typer.Context,
                 strategy: str = typer.Argument(..., help="strategy name"),
                 symbols: Optional[str] = typer.Option(None, "--symbols", "-s", help="comma-separated symbols"),
                 timeframe: Optional[str] = typer.Option(None, "--timeframe", "-t", help="bar size"),
                 since: Optional[str] = typer.Option(None, "--since", help="look-back like 730d, or a start date "
                                                     "(default: the whole stored series; 730d from a source)"),
                 until: str = typer.Option("now", "--until", help="end date (default: the end of the data)"),
                 source: Optional[str] = typer.Option(None, "--source", help="sim | ccxt:<id> | csv:<path> "
                                                      "(default: stored bars when state.db has them, else sim)"),
                 exchange: Optional[str] = typer.Option(None, "--exchange", help="which stored exchange's bars"),
                 trial_family: Optional[str] = typer.Option(None, "--trial-family", help="name the research "
                                                            "question the DSR deflates over"),
                 param: List[str] = typer.Option([], "--param", "-p", help="fix a parameter: key=value"),
                 trials: int = typer.Option(50, "--trials", "-n", help="trials per window: optuna trials with tpe "
                                            "(a re-run resumes the stored study up to this many), else parameter "
                                            "sets evaluated in every window"),
                 windows: int = typer.Option(4, "--windows", "-w", help="walk-forward windows"),
                 is_fraction: float = typer.Option(0.5, "--is-fraction", help="share of bars in the first IS span"),
                 anchored: bool = typer.Option(False, "--anchored/--rolling", help="anchored or rolling windows"),
                 search: str = typer.Option("tpe", "--search", "--sampler", help="tpe (default; optuna: "
                                            "multivariate TPE steered by a robust in-sample score, one study per "
                                            "window, stored beside state.db) | random | grid; all report PBO. TPE "
                                            "vs random: docs/benchmarks.md"),
                 selection: Optional[str] = typer.Option(None, "--selection", help="how a window picks its "
                                                         "configuration: sharpe (in-sample Sharpe; default) | robust "
                                                         "(fold-mean Sharpe minus one standard error over 4 in-sample "
                                                         "folds) | plateau (mean in-sample Sharpe of its nearest "
                                                         "evaluated neighbours) | medoid (the most central of the "
                                                         "best fifth) | steady (the best fifth's highest robust "
                                                         "score)"),
                 prune: bool = typer.Option(False, "--prune/--no-prune", help="tpe: stop trials whose running fold "
                                            "Sharpe is below the median (a trial is one kernel pass, so this saves "
                                            "no time; pruned trials count in DSR but cannot be chosen)"),
                 start: List[str] = typer.Option([], "--start", help="tpe: a starting point key=value inside the "
                                                 "param space, evaluated first in every window"),
                 seed: int = typer.Option(0, "--seed"),
                 jobs: int = typer.Option(2, "--jobs", "-j", help="parallel workers"),
                 backend: str = typer.Option("loky", "--backend", help="loky | threading | sequential | dask; with "
                                             "tpe the windows' studies run in parallel on it (each study's trials "
                                             "are sequential, so one seed gives one result)"),
                 scheduler: Optional[str] = typer.Option(None, "--scheduler", help="dask scheduler address "
                                                         "(default: a local cluster)"),
                 pull: bool = typer.Option(True, "--pull/--no-pull"),
                 out: Optional[str] = typer.Option(None, "--out", "-o", help="tearsheet path (.html)")) -> None:
        """Walk-forward optimisation with a progress bar; writes the window table and its tearsheet."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Table

        from engine.backtest.optuna_search import TpeSettings
        from engine.backtest.research import parse_params, report_path
        from engine.backtest.tearsheet import write_walkforward_tearsheet
        from engine.backtest.walkforward import check_choices, run_walkforward

        console = Console()
        try:  # before history is loaded or pulled
            check_choices(search, backend, selection)
        except ValueError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        if since is None and source is not None:
            since = "730d"
        settings, store, data = _load(ctx, console, strategy, param, symbols, timeframe, since, until, source, pull,
                                      exchange)

        client = None
        try:
            if backend == "dask" and scheduler:
                from distributed import Client

                try:
                    client = Client(scheduler, timeout="10s")
                except (OSError, TimeoutError) as exc:
                    typer.secho(f"--scheduler: cannot reach the dask scheduler at {scheduler} ({exc}); start it "
                                "with `dask scheduler` and its workers with `dask worker ADDRESS`", fg="red", err=True)
                    raise typer.Exit(2) from exc
            with Progress(TextColumn("[bold]walk-forward"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console) as bar:
                task = bar.add_task("trials", total=trials * windows)
                wf = run_walkforward(data.strategy_cls, data.panel, settings.backtest, n_trials=trials,
                                     n_windows=windows, is_fraction=is_fraction, anchored=anchored, search=search,
                                     seed=seed, fixed_params=parse_params(param), store=store, n_jobs=jobs,
                                     start_params=parse_params(start) or None, selection=selection,
                                     tpe=TpeSettings(prune=prune) if search == "tpe" else None,
                                     backend=backend, timeframe=data.spec.timeframe, trial_family=trial_family,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total))
            path = write_walkforward_tearsheet(wf, report_path(settings, "walkforward", strategy, out),
                                               data.provenance())
            if wf.run_id is not None:
                from engine.backtest.registry import set_report_path

                set_report_path(store, wf.run_id, str(path.resolve()))
        except ValueError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        finally:
            if client is not None:
                client.close()
            store.dispose()
        table = Table(title=f"walk-forward {strategy} ({wf.search}, {wf.backend}, {wf.elapsed_s:.1f} s)",
                      title_justify="left")
        for col in ("window", "OOS start", "OOS end", "IS Sharpe", "OOS Sharpe", "OOS return", "best params"):
            table.add_column(col, justify="left" if col == "best params" else "right")
        for r in wf.table.itertuples():
            table.add_row(str(r.window), f"{r.oos_start:%Y-%m-%d}", f"{r.oos_end:%Y-%m-%d}", f"{r.is_sharpe:.2f}",
                          f"{r.oos_sharpe:.2f}", f"{r.oos_return:.2%}",
                          ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                    for k, v in r.best_params.items()))
        console.print(table)
        m = wf.metrics
        if data.synthetic:
            console.print("[yellow]synthetic data: simulator bars, not a market; these numbers promise nothing[/]")
        console.print(_metrics_table("stitched out-of-sample", m, ["total_return", "sharpe", "max_drawdown", "trades",
                                                                   "hit_rate", "profit_factor", "psr", "dsr",
                                                                   "n_trials", "pbo"]))
        by = ", ".join(f"{k} {v:,}" for k, v in m["n_trials_by_strategy"].items())
        console.print(f"N = {m['n_trials']:,} trials ({by}) in family {m['trial_family']}", highlight=False)
        if wf.pbo.get("method"):
            console.print(f"PBO {m['pbo']:.3f}: {wf.pbo['method']} ({wf.pbo['n_combinations']:,} splits)"
                          if wf.pbo.get("n_combinations") else f"PBO not computed: {wf.pbo['method']}", highlight=False)
        if wf.studies:
            console.print(f"optuna studies: {wf.studies[0].rsplit('/', 1)[0]}/w* ({len(wf.studies)} windows)",
                          highlight=False)
        console.print(f"tearsheet: {path}")
