"""`quantdesk store copy --from SRC --to DST`: move a desk between stores (e.g. state.db to PostgreSQL), verified."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the `store` command group."""
    store = typer.Typer(help="The state store: copy a desk from one store to another.", no_args_is_help=True)
    store.command("copy")(copy)
    app.add_typer(store, name="store")


def copy(source: str = typer.Option(..., "--from", help="source store: a state.db path, sqlite:///PATH or "
                                    "postgresql+psycopg://USER@HOST/DB"),
         target: str = typer.Option(..., "--to", help="target store (created and migrated; must be empty)")) -> None:
    """Copy every table from one store into an empty one and check row counts and content hashes per table."""
    from engine.store import StoreError, open_readonly, open_store
    from engine.store.copy import copy_store
    from engine.store.urls import StoreTargetError, redact, store_url_for

    try:
        src_url, dst_url = store_url_for(source), store_url_for(target)
        if src_url == dst_url:
            raise StoreError("--from and --to name the same store")
        src = open_readonly(src_url)
        dst = open_store(dst_url)
    except (StoreError, StoreTargetError) as exc:
        typer.secho(f"store copy: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    except Exception as exc:  # noqa: BLE001 - a driver/connection error: one line, no traceback
        typer.secho(f"store copy: cannot open a store: {type(exc).__name__}: {str(exc).splitlines()[0]}", fg="red",
                    err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"copying {redact(src_url)} -> {redact(dst_url)}")
    try:
        report = copy_store(src, dst, progress=lambda name, n: typer.echo(f"  {name}: {n} rows"))
    except StoreError as exc:
        typer.secho(f"store copy: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    except Exception as exc:  # noqa: BLE001 - a database error mid-copy: one line; the target is left to drop
        typer.secho(f"store copy: failed: {type(exc).__name__}: {str(exc).splitlines()[0]}; the target may hold a "
                    "partial copy: drop and recreate it before trying again", fg="red", err=True)
        raise typer.Exit(1) from exc
    finally:
        src.dispose()
        dst.dispose()
    bad = [t for t in report.tables if not t.ok]
    for t in bad:
        typer.secho(f"  MISMATCH {t.name}: {t.rows_source} rows -> {t.rows_target}, hash {t.hash_source[:12]} -> "
                    f"{t.hash_target[:12]}", fg="red", err=True)
    if bad:
        raise typer.Exit(1)
    typer.secho(f"copied {report.rows} rows in {len(report.tables)} tables; counts and hashes match", fg="green")
