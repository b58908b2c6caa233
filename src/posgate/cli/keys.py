"""`posgate keys rotate | rotate-master | reencrypt`: the working-key period and the master key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posgate.cli.common import DatabaseUrl, DataDir, build_settings
from posgate.errors import PosgateError

keys_app = typer.Typer(help="Key management.", no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Start a new working-key period: every terminal gets 97 until it signs in again."""
    from posgate.bootstrap.store import open_store
    from posgate.store.acquirer import rotate_key_period

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    handle = open_store(settings, load_demo=False)
    period = handle.store.transact(rotate_key_period)
    handle.store.close()
    typer.echo(f"key period is now {period}")


@keys_app.command("rotate-master")
def keys_rotate_master(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    wait_s: Annotated[
        float | None,
        typer.Option("--wait-s", min=0, help="how long running processes get to load the new key"),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="rows per unit")] = 500,
    add_only: Annotated[
        bool, typer.Option("--add-only", help="only add the new version (copy master.key to every machine)")
    ] = False,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="do not retire the older versions")] = False,
) -> None:
    """Rotate the master key while the hosts run: add a version, re-encrypt every PAN and sealed key under
    it in batches, retire the older versions."""
    _rotate_master(data_dir, database_url, wait_s, batch_size, add=True, add_only=add_only, keep_old=keep_old)


@keys_app.command("reencrypt")
def keys_reencrypt(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    wait_s: Annotated[
        float | None, typer.Option("--wait-s", min=0, help="wait before the last pass and the retirement")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="rows per unit")] = 500,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="do not retire the older versions")] = False,
) -> None:
    """Finish a rotation: re-encrypt everything under the newest master key version, retire the others."""
    _rotate_master(data_dir, database_url, wait_s, batch_size, add=False, add_only=False, keep_old=keep_old)


def _rotate_master(
    data_dir: Path | None,
    database_url: str | None,
    wait_s: float | None,
    batch_size: int,
    add: bool,
    add_only: bool,
    keep_old: bool,
) -> None:
    from posgate.bootstrap.store import open_store
    from posgate.store.key_rotation import add_version, rotate

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    wait = wait_s if wait_s is not None else 2 * settings.master_key_reload_s + 1
    handle = open_store(settings, load_demo=False)
    try:
        if add_only:
            keyring = add_version(settings.master_key_path, handle.store, handle.vault)
            typer.echo(
                f"master key version {keyring.current} ({keyring.fingerprint(keyring.current)}) added to "
                f"{settings.master_key_path}; copy it to every machine, then run `posgate keys reencrypt`"
            )
            return
        report = rotate(
            settings.master_key_path,
            handle.store,
            handle.vault,
            wait,
            batch_size,
            add=add,
            retire=not keep_old,
            progress=typer.echo,
        )
    except PosgateError as exc:
        typer.echo(f"posgate keys: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        handle.store.close()
    typer.echo(
        f"master key version {report.current} seals everything: {sum(report.resealed.values())} values "
        f"re-encrypted in {report.seconds:.1f} s"
    )
