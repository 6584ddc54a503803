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
          timeframe: Optional[str], since: str, until: str, source: str, pull: bool) -> tuple[Any, Any, Any]:
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
                                 source, pull=pull, progress=progress)
        except (ValueError, KeyError) as exc:
            store.dispose()
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
    return settings, store, data


def register(app: typer.Typer) -> None:
    """Add `backtest` and `optimize` to the root app."""

    @app.command()
    def backtest(ctx: typer.Context,
                 strategy: str = typer.Argument(..., help="strategy name, e.g. quantum_momentum or macro_trend"),
                 symbols: Optional[str] = typer.Option(None, "--symbols", "-s", help="comma-separated symbols "
                                                       "(default: data.symbols)"),
                 timeframe: Optional[str] = typer.Option(None, "--timeframe", "-t", help="bar size (default: the "
                                                         "strategy's)"),
                 since: str = typer.Option("365d", "--since", help="look-back like 365d, or a start date"),
                 until: str = typer.Option("now", "--until", help="end date (default now)"),
                 source: str = typer.Option("sim", "--source", help="sim | ccxt:<id> | csv:<path>"),
                 param: List[str] = typer.Option([], "--param", "-p", help="parameter override key=value"),
                 sizer: str = typer.Option("fixed", "--sizer", help="fixed | vol_target"),
                 stop_loss: Optional[float] = typer.Option(None, "--stop-loss", help="fraction, e.g. 0.05"),
                 take_profit: Optional[float] = typer.Option(None, "--take-profit", help="fraction, e.g. 0.1"),
                 max_bars: Optional[int] = typer.Option(None, "--max-bars", help="time barrier in bars"),
                 lookahead: bool = typer.Option(True, "--lookahead/--no-lookahead", help="run the lookahead check"),
                 pull: bool = typer.Option(True, "--pull/--no-pull", help="pull missing history into state.db"),
                 out: Optional[str] = typer.Option(None, "--out", "-o", help="tearsheet path (.html)"),
                 json_out: bool = typer.Option(False, "--json", help="print metrics as JSON")) -> None:
        """Backtest a strategy, record it as a trial, print metrics (with DSR) and write an HTML tearsheet."""
        import json

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
                                      pull)
        try:
            barriers = Barriers(stop_loss, take_profit, max_bars)
            strat = data.strategy_cls(**data.params)
            with console.status("backtesting"):
                result = run_backtest(strat, data.panel, settings, sizer=SIZERS[sizer](), barriers=barriers,
                                      store=store, lookahead=lookahead, timeframe=data.spec.timeframe)
            path = write_tearsheet(result, report_path(settings, "backtest", strategy, out))
            if result.run_id is not None:
                set_report_path(store, result.run_id, str(path.resolve()))
        except ValueError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        finally:
            store.dispose()
        m = result.metrics
        if json_out:
            typer.echo(json.dumps({"metrics": m, "report": str(path), "dataset_hash": result.dataset_hash,
                                   "lookahead": None if result.lookahead is None else result.lookahead.to_dict()},
                                  default=str))
            return
        idx = result.equity.index
        console.print(f"[bold]{strategy}[/] {', '.join(data.spec.symbols)} {data.spec.timeframe} "
                      f"{idx[0]:%Y-%m-%d} to {idx[-1]:%Y-%m-%d} ({len(idx):,} bars)")
        console.print(_metrics_table("metrics", m, _SUMMARY_KEYS))
        if result.lookahead is not None:
            style = "green" if result.lookahead.ok else "bold red"
            console.print(f"lookahead check [{style}]{result.lookahead.summary()}[/]")
        console.print(f"DSR {m['dsr']:.3f} over {m['n_trials']:,} trials on dataset {result.dataset_hash[:12]}")
        console.print(f"tearsheet: {path}")

    @app.command()
    def optimize(ctx: typer.Context,
                 strategy: str = typer.Argument(..., help="strategy name"),
                 symbols: Optional[str] = typer.Option(None, "--symbols", "-s", help="comma-separated symbols"),
                 timeframe: Optional[str] = typer.Option(None, "--timeframe", "-t", help="bar size"),
                 since: str = typer.Option("730d", "--since", help="look-back like 730d, or a start date"),
                 until: str = typer.Option("now", "--until", help="end date (default now)"),
                 source: str = typer.Option("sim", "--source", help="sim | ccxt:<id> | csv:<path>"),
                 param: List[str] = typer.Option([], "--param", "-p", help="fix a parameter: key=value"),
                 trials: int = typer.Option(50, "--trials", "-n", help="parameter sets (each runs in every window)"),
                 windows: int = typer.Option(4, "--windows", "-w", help="walk-forward windows"),
                 is_fraction: float = typer.Option(0.5, "--is-fraction", help="share of bars in the first IS span"),
                 anchored: bool = typer.Option(False, "--anchored/--rolling", help="anchored or rolling windows"),
                 search: str = typer.Option("random", "--search", help="random | grid"),
                 seed: int = typer.Option(0, "--seed"),
                 jobs: int = typer.Option(2, "--jobs", "-j", help="parallel workers"),
                 backend: str = typer.Option("loky", "--backend", help="loky | threading | sequential | dask"),
                 scheduler: Optional[str] = typer.Option(None, "--scheduler", help="dask scheduler address "
                                                         "(default: a local cluster)"),
                 pull: bool = typer.Option(True, "--pull/--no-pull"),
                 out: Optional[str] = typer.Option(None, "--out", "-o", help="tearsheet path (.html)")) -> None:
        """Walk-forward optimisation with a progress bar; writes the window table and its tearsheet."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Table

        from engine.backtest.research import parse_params, report_path
        from engine.backtest.tearsheet import write_walkforward_tearsheet
        from engine.backtest.walkforward import run_walkforward

        console = Console()
        settings, store, data = _load(ctx, console, strategy, param, symbols, timeframe, since, until, source, pull)

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
                                     backend=backend, timeframe=data.spec.timeframe,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total))
            path = write_walkforward_tearsheet(wf, report_path(settings, "walkforward", strategy, out))
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
        table = Table(title=f"walk-forward {strategy} ({wf.backend}, {wf.elapsed_s:.1f} s)", title_justify="left")
        for col in ("window", "OOS start", "OOS end", "IS Sharpe", "OOS Sharpe", "OOS return", "best params"):
            table.add_column(col, justify="left" if col == "best params" else "right")
        for r in wf.table.itertuples():
            table.add_row(str(r.window), f"{r.oos_start:%Y-%m-%d}", f"{r.oos_end:%Y-%m-%d}", f"{r.is_sharpe:.2f}",
                          f"{r.oos_sharpe:.2f}", f"{r.oos_return:.2%}",
                          ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                    for k, v in r.best_params.items()))
        console.print(table)
        m = wf.metrics
        console.print(_metrics_table("stitched out-of-sample", m, ["total_return", "sharpe", "max_drawdown", "psr",
                                                                   "dsr", "n_trials", "pbo"]))
        console.print(f"tearsheet: {path}")
