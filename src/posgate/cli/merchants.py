"""`posgate merchant …` and `posgate terminal provision`: onboarding from the command line, straight against
the store (`open_store`), acting as user "cli". A thin Typer shell over `posgate.merchants` and
its use cases (`merchants.operations`); `cli.root` mounts `merchant_app` and `provision_terminal_command`.

Exit codes: 0 done · 2 refused (the message names the field or the state) or bad usage.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from posgate.bootstrap.store import open_store
from posgate.config import load_settings
from posgate.errors import ConfigError, PosgateError
from posgate.merchants import operations
from posgate.merchants.provisioning import DEFAULT_MAC_ALGORITHM, ProfileData
from posgate.merchants.queries import list_applications, merchant_view
from posgate.merchants.uploads import UploadStore
from posgate.store.runtime import StoreHandle
from posgate.terminal.state import TerminalState

T = TypeVar("T")
CLI_USER = operations.Operator(username="cli")

merchant_app = typer.Typer(
    name="merchant", help="Merchant onboarding: apply, review, approve, list.", no_args_is_help=True
)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory [POSGATE_DATA_DIR]")]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="[POSGATE_DATABASE_URL]")]
MacOpt = Annotated[
    str,
    typer.Option(
        "--mac",
        metavar="ALGORITHM",
        help="the terminals' MAC: x919 (ANSI X9.19) or cup_ecb (legacy terminals)",
    ),
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"posgate: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def _context(data_dir: Path | None, database_url: str | None) -> Iterator[operations.StoreDesk]:
    overrides = {
        k: v for k, v in {"data_dir": data_dir, "database_url": database_url}.items() if v is not None
    }
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        _fail(str(exc))
    handle: StoreHandle = open_store(settings)
    try:
        yield operations.StoreDesk(handle, settings, UploadStore(settings.data_dir / "uploads"))
    finally:
        handle.store.close()


def _run(data_dir: Path | None, database_url: str | None, work: Callable[[operations.StoreDesk], T]) -> T:
    with _context(data_dir, database_url) as ctx:
        try:
            return work(ctx)
        except PosgateError as exc:
            _fail(str(exc))


def _read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        _fail(f"cannot read application {path}: {exc}")
    if not isinstance(data, dict):
        _fail(f"application {path}: expected a JSON object or TOML table")
    return data


@merchant_app.command("apply")
def apply(
    document: Annotated[
        Path, typer.Argument(help="application fields as JSON or TOML; [photos] kind = path")
    ],
    id_card_front: Annotated[Path | None, typer.Option(help="ID card front photo")] = None,
    id_card_back: Annotated[Path | None, typer.Option(help="ID card back photo")] = None,
    storefront: Annotated[Path | None, typer.Option(help="shop storefront photo")] = None,
    interior: Annotated[Path | None, typer.Option(help="shop interior photo")] = None,
    cashier: Annotated[Path | None, typer.Option(help="cashier desk photo")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """File an application; prints its number and the automatic checks."""
    data = _read_document(document)
    photo_paths = {k: document.parent / str(v) for k, v in dict(data.pop("photos", {})).items()}
    given = {
        "id_card_front": id_card_front,
        "id_card_back": id_card_back,
        "storefront": storefront,
        "interior": interior,
        "cashier": cashier,
    }
    photo_paths.update({k: v for k, v in given.items() if v is not None})
    files = {}
    for kind, path in photo_paths.items():
        try:
            files[kind] = (path.read_bytes(), path.name)
        except OSError as exc:
            _fail(f"{kind}: cannot read {path}: {exc.strerror}")
    values = {k: None if v is None else str(v) for k, v in data.items()}
    view = _run(data_dir, database_url, lambda ctx: operations.submit(ctx, CLI_USER, values, files))
    typer.echo(f"application {view['id']} submitted: {view['shop_name']} (MCC {view['mcc']})")
    for check in view["checks"]:
        typer.echo(f"  {check['outcome']:4}  {check['name']}: {check['detail']}")


@merchant_app.command("review")
def review_command(
    application_id: Annotated[int, typer.Argument(metavar="ID")],
    start: Annotated[bool, typer.Option("--start", help="submitted → under_review")] = False,
    more_info: Annotated[str | None, typer.Option("--more-info", metavar="REASON")] = None,
    reject: Annotated[str | None, typer.Option("--reject", metavar="REASON")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Start the review, ask for more information, or reject (exactly one)."""
    chosen = [
        (a, r)
        for a, r, on in [
            ("start_review", None, start),
            ("request_more_info", more_info, more_info is not None),
            ("reject", reject, reject is not None),
        ]
        if on
    ]
    if len(chosen) != 1:
        _fail("give exactly one of --start, --more-info REASON, --reject REASON")
    action, reason = chosen[0]
    view = _run(
        data_dir, database_url, lambda ctx: operations.decide(ctx, CLI_USER, application_id, action, reason)
    )
    typer.echo(f"application {application_id}: {view['status']}")


@merchant_app.command("approve")
def approve_command(
    application_id: Annotated[int, typer.Argument(metavar="ID")],
    terminals: Annotated[int, typer.Option("--terminals", help="terminals to provision")] = 1,
    debit_ppm: Annotated[
        int | None, typer.Option("--debit-ppm", help="debit rate, ppm (5000 = 0.50 %)")
    ] = None,
    debit_cap_fen: Annotated[int | None, typer.Option("--debit-cap-fen", help="debit fee cap, fen")] = None,
    credit_ppm: Annotated[int | None, typer.Option("--credit-ppm", help="credit rate, ppm")] = None,
    wallet_ppm: Annotated[
        int | None, typer.Option("--wallet-ppm", help="QR wallet rate, ppm (3800 = 0.38 %)")
    ] = None,
    d0: Annotated[bool, typer.Option("--d0", help="allow D0 settlement")] = False,
    mac: MacOpt = DEFAULT_MAC_ALGORITHM,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Approve: MID, fee plan and terminals (each with a fresh TMK); the merchant starts in testing."""
    plan: dict[str, Any] = {
        "mdr_debit_ppm": debit_ppm,
        "mdr_credit_ppm": credit_ppm,
        "mdr_wallet_ppm": wallet_ppm,
        "d0_allowed": d0,
    }
    if debit_cap_fen is not None:
        plan["mdr_debit_cap_fen"] = debit_cap_fen

    def work(ctx: operations.StoreDesk) -> dict[str, Any]:
        view = operations.decide(
            ctx, CLI_USER, application_id, "approve", fee_plan=plan, terminals=terminals, mac_algorithm=mac
        )
        return ctx.transact(lambda s: merchant_view(s, view["mid"]))

    merchant = _run(data_dir, database_url, work)
    typer.echo(f"application {application_id}: approved; merchant {merchant['mid']} ({merchant['status']})")
    for terminal in merchant["terminals"]:
        typer.echo(
            f"  terminal {terminal['tid']} {terminal['status']} TMK KCV {terminal['tmk_kcv']}"
            f" MAC {terminal['mac_algorithm']}"
        )


@merchant_app.command("list")
def list_command(
    status: Annotated[str | None, typer.Option("--status", help="only applications in this status")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Applications, newest first."""
    rows = _run(
        data_dir,
        database_url,
        lambda ctx: ctx.transact(lambda s: list_applications(s, (status,) if status else ())),
    )
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        typer.echo(f"{row['id']:>5}  {row['status']:<16} {row['mid'] or '-':<15}  {row['shop_name']}")


def provision_terminal_command(
    merchant: Annotated[
        str | None, typer.Option("--merchant", metavar="MID", help="provision a new terminal")
    ] = None,
    tid: Annotated[str | None, typer.Option("--tid", help="an existing terminal (write its profile)")] = None,
    count: Annotated[int, typer.Option("--count", help="terminals to provision")] = 1,
    mac: MacOpt = DEFAULT_MAC_ALGORITHM,
    profile_file: Annotated[
        Path | None,
        typer.Option("--profile-file", help="write a simulator profile (TerminalState JSON, 0600)"),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Provision terminals of a merchant (fresh TMK each), or write the simulator profile of one; the
    profile works with `posgate terminal sign-in --state-file F --tid T`. Profiles: test deployments only."""
    if (merchant is None) == (tid is None):
        _fail("give either --merchant MID (provision) or --tid TID (profile of an existing terminal)")
    if profile_file is not None and count != 1:
        _fail("--profile-file writes one terminal's profile: use it with --count 1")

    def work(ctx: operations.StoreDesk) -> list[str]:
        tids = [tid] if tid else operations.provision(ctx, CLI_USER, str(merchant), count, mac)
        if profile_file is not None:
            _profile_state(operations.terminal_profile(ctx, CLI_USER, tids[0])).save(profile_file)
        return tids

    tids = _run(data_dir, database_url, work)
    for one in tids:
        typer.echo(
            f"terminal {one}" + (f": profile written to {profile_file}" if profile_file else " provisioned")
        )


def _profile_state(profile: ProfileData) -> TerminalState:
    """The terminal simulator's state file for a provisioned terminal."""
    return TerminalState(
        tid=profile.tid,
        mid=profile.mid,
        tmk_hex=profile.tmk_hex,
        nii=profile.nii,
        mac_algorithm=profile.mac_algorithm,
    )
