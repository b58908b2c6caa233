"""`posgate risk list add|remove|show`, `posgate risk alerts`, `posgate risk alert dismiss|confirm|hold|
release|suspend-terminal|suspend-merchant`, `posgate risk hold|release|holds|suspend` and `posgate risk
backtest` (docs/risk.md), straight against the store of a running `posgate up` (a running host
sees a list change at its next request). A thin Typer shell over `risk.lists`, `risk.alerts` and
`risk.backtest`; cards are listed by PAN hash and shown masked — the PAN typed is never stored nor printed.

Exit codes: 0 done, 1 nothing to remove, 2 refused (the message says why).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer

from posgate.cards.pan import mask_pan, validate_pan
from posgate.config import Settings, load_settings
from posgate.errors import PosgateError

risk_app = typer.Typer(
    help="Risk control: lists, alerts, settlement holds, suspensions, backtests (docs/risk.md).",
    no_args_is_help=True,
)
list_app = typer.Typer(
    help="Block, allow and watch lists of cards, terminals, merchants and BINs.", no_args_is_help=True
)
risk_app.add_typer(list_app, name="list")

ACTOR = "cli"
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory [POSGATE_DATA_DIR]")]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="[POSGATE_DATABASE_URL]")]
Kind = Annotated[str, typer.Argument(help="card | terminal | merchant | bin | mcc")]
Pan = Annotated[str | None, typer.Option("--pan", help="the card number (stored only as its keyed hash)")]
Tid = Annotated[str | None, typer.Option("--tid", help="terminal id, 8 digits")]
Mid = Annotated[str | None, typer.Option("--mid", help="merchant id, 15 digits")]
Bin = Annotated[str | None, typer.Option("--bin", help="BIN, the first 6 digits of the card number")]
Mcc = Annotated[str | None, typer.Option("--mcc", help="merchant category code, 4 digits (MCC restrictions)")]
CardKind = Annotated[
    str | None,
    typer.Option("--card-kind", help="an MCC restricted for credit | debit cards only (all by default)"),
]
ListName = Annotated[str, typer.Option("--list", help="block | allow (cards) | watch (terminals, merchants)")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"posgate: {message}", err=True)
    raise typer.Exit(2)


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    given = {k: v for k, v in {"data_dir": data_dir, "database_url": database_url}.items() if v is not None}
    try:
        return load_settings(**given)
    except PosgateError as error:
        _fail(str(error))


def _expiry(text: str | None, zone: str) -> dt.datetime | None:
    """ISO date-time → naive UTC; without an offset it is the acquirer's local time."""
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--expires: not an ISO date-time: {text!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(zone))
    return when.astimezone(dt.UTC).replace(tzinfo=None)


def _subject(
    kind: str,
    pan: str | None,
    tid: str | None,
    mid: str | None,
    bin_: str | None,
    mcc: str | None = None,
    card_kind: str | None = None,
) -> tuple[str, str]:
    """The option that names the listed thing for `kind`: (raw value, what to show)."""
    given = {"card": pan, "terminal": tid, "merchant": mid, "bin": bin_, "mcc": mcc}
    if kind not in given:
        _fail(f"unknown list kind {kind!r} (card, terminal, merchant, bin, mcc)")
    option = {"card": "--pan", "terminal": "--tid", "merchant": "--mid", "bin": "--bin", "mcc": "--mcc"}[kind]
    if card_kind is not None and kind != "mcc":
        _fail("--card-kind restricts an MCC only")
    if kind == "mcc" and mcc is not None:
        from posgate.risk.lists import mcc_value

        value = mcc_value(mcc, card_kind)
        return value, value
    value = given[kind]
    others = [f"--{k}" for k, v in given.items() if v is not None and k != kind]
    if value is None:
        _fail(f"a {kind} is named with {option}")
    if others:
        _fail(f"a {kind} is named with {option} only")
    if kind == "card":
        try:
            validate_pan(value)
        except PosgateError as error:
            _fail(f"--pan: {error}")
        return value, mask_pan(value)
    return value, value


def _change(
    kind: str,
    subject: tuple[str, str],
    data_dir: Path | None,
    database_url: str | None,
    work,  # type: ignore[no-untyped-def]
):  # type: ignore[no-untyped-def]
    from posgate.bootstrap.store import open_store

    settings = _settings(data_dir, database_url)
    handle = open_store(settings, load_demo=False)
    try:
        value, shown = subject
        if kind == "card":
            value = handle.vault.pan_hash(value)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return handle.store.transact(lambda s: work(s, value, shown, now, settings))
    except PosgateError as error:
        _fail(str(error))
    finally:
        handle.store.close()


@list_app.command("add")
def add(
    kind: Kind,
    reason: Annotated[str, typer.Option("--reason", help="why (kept, audited, shown to officers)")],
    pan: Pan = None,
    tid: Tid = None,
    mid: Mid = None,
    bin_: Bin = None,
    mcc: Mcc = None,
    card_kind: CardKind = None,
    list_name: ListName = "block",
    expires: Annotated[
        str | None, typer.Option("--expires", help="ISO date-time; without an offset, local time")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Put a card, terminal, merchant or BIN on a list (block by default), or restrict an MCC."""
    from posgate.risk.lists import add_entry

    subject = _subject(kind, pan, tid, mid, bin_, mcc, card_kind)

    def work(session, value, shown, now, settings):  # type: ignore[no-untyped-def]
        until = _expiry(expires, settings.timezone)
        masked = shown if kind == "card" else None
        return add_entry(session, kind, list_name, value, reason, ACTOR, now, masked=masked, expires_at=until)

    entry = _change(kind, subject, data_dir, database_url, work)
    typer.echo(f"{kind} {subject[1]} on the {list_name} list (entry {entry})")


@list_app.command("remove")
def remove(
    kind: Kind,
    pan: Pan = None,
    tid: Tid = None,
    mid: Mid = None,
    bin_: Bin = None,
    mcc: Mcc = None,
    card_kind: CardKind = None,
    list_name: ListName = "block",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Take a card, terminal, merchant or BIN off a list (block by default), or lift an MCC restriction."""
    from posgate.risk.lists import remove_entry

    subject = _subject(kind, pan, tid, mid, bin_, mcc, card_kind)
    removed = _change(
        kind,
        subject,
        data_dir,
        database_url,
        lambda s, value, shown, now, settings: remove_entry(s, kind, list_name, value, ACTOR, now),
    )
    if not removed:
        typer.echo(f"posgate: {kind} {subject[1]} is not on the {list_name} list", err=True)
        raise typer.Exit(1)
    typer.echo(f"{kind} {subject[1]} off the {list_name} list")


@list_app.command("show")
def show(
    kind: Annotated[
        str | None, typer.Argument(help="card | terminal | merchant | bin | mcc (all by default)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The entries in force, newest first (cards masked)."""
    from posgate.bootstrap.store import open_store
    from posgate.risk.lists import active_entries

    settings = _settings(data_dir, database_url)
    handle = open_store(settings, load_demo=False)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        entries = handle.store.transact(lambda s: active_entries(s, now, kind))
    finally:
        handle.store.close()
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    for e in entries:
        until = f" until {e['expires_at']}" if e["expires_at"] else ""
        typer.echo(f"{e['id']:>5} {e['list']:<8} {e['action']:<5} {e['value']:<19} {e['reason']}{until}")


@risk_app.command("alerts")
def alerts(
    state: Annotated[
        str | None, typer.Option("--state", help="open | dismissed | confirmed (all by default)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 200,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Risk alerts, newest first: the rule that raised each, the terminal, merchant, masked card, state."""
    from posgate.bootstrap.store import open_store
    from posgate.risk.alerts import ALERT_STATES, list_alerts

    if state is not None and state not in ALERT_STATES:
        _fail(f"--state: one of {', '.join(ALERT_STATES)}, not {state!r}")
    settings = _settings(data_dir, database_url)
    handle = open_store(settings, load_demo=False)
    try:
        rows = handle.store.transact(lambda s: list_alerts(s, state, limit))
    finally:
        handle.store.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for a in rows:
        typer.echo(
            f"{a['id']:>6} {a['created_at'][:19]} {a['state']:<9} {a['action']:<16} {a['rule']:<28} "
            f"tid {a['tid']} mid {a['mid']} {a['pan_masked'] or '':<19} {a['amount_fen'] / 100:.2f} "
            f"rrn {a['rrn'] or '-'}"
        )


alert_app = typer.Typer(
    help="Decide an alert (dismiss; confirm fraud: the card is blocked) or act on it (hold, release, suspend)"
)
risk_app.add_typer(alert_app, name="alert", no_args_is_help=True)


def _decide(alert_id: int, verdict: str, note: str, data_dir: Path | None, database_url: str | None) -> None:
    from posgate.bootstrap.store import open_store
    from posgate.risk.alerts import decide_alert

    settings = _settings(data_dir, database_url)
    handle = open_store(settings, load_demo=False)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        done = handle.store.transact(lambda s: decide_alert(s, alert_id, verdict, ACTOR, now, note))
    except PosgateError as error:
        _fail(str(error))
    finally:
        handle.store.close()
    blocked = f"; card {done['pan_masked']} on the block list" if done["blocked_entry"] else ""
    typer.echo(f"alert {done['id']} {done['state']}{blocked}")


Note = Annotated[str, typer.Option("--note", help="the officer's note (audited)")]


@alert_app.command("dismiss")
def dismiss(
    alert_id: Annotated[int, typer.Argument(help="the alert's id")],
    note: Note = "",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Not fraud: close the alert (a label for backtests)."""
    _decide(alert_id, "dismiss", note, data_dir, database_url)


@alert_app.command("confirm")
def confirm(
    alert_id: Annotated[int, typer.Argument(help="the alert's id")],
    note: Note = "",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Fraud: close the alert as confirmed and put the transaction's card on the block list."""
    _decide(alert_id, "confirm", note, data_dir, database_url)


def _act(alert_id: int, action: str, note: str, data_dir: Path | None, database_url: str | None) -> None:
    from posgate.risk.disposal import act_on_alert

    done = _store_work(
        data_dir, database_url, lambda s, now: act_on_alert(s, alert_id, action, ACTOR, now, note)
    )
    what = {
        "hold": f"merchant {done['mid']} settlement held (hold {done.get('hold')})",
        "release": f"merchant {done['mid']} settlement released (hold {done.get('hold')})",
        "suspend_terminal": f"terminal {done['tid']} suspended",
        "suspend_merchant": f"merchant {done['mid']} suspended",
    }[action]
    typer.echo(f"alert {done['id']}: {what}")


def _store_work(data_dir: Path | None, database_url: str | None, work):  # type: ignore[no-untyped-def]
    """Run `work(session, now)` in one unit of work on the store; a refusal exits 2 with its message."""
    from posgate.bootstrap.store import open_store

    settings = _settings(data_dir, database_url)
    handle = open_store(settings, load_demo=False)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        return handle.store.transact(lambda s: work(s, now))
    except PosgateError as error:
        _fail(str(error))
    finally:
        handle.store.close()


@alert_app.command("hold")
def alert_hold(
    alert_id: Annotated[int, typer.Argument(help="the alert's id")],
    note: Note = "",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Hold the settlement of the alert's merchant: no payout until released."""
    _act(alert_id, "hold", note, data_dir, database_url)


@alert_app.command("release")
def alert_release(
    alert_id: Annotated[int, typer.Argument(help="the alert's id")],
    note: Note = "",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Release the settlement hold of the alert's merchant: its funds go out with the next payouts."""
    _act(alert_id, "release", note, data_dir, database_url)


@alert_app.command("suspend-terminal")
def alert_suspend_terminal(
    alert_id: Annotated[int, typer.Argument(help="the alert's id")],
    note: Note = "",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Suspend the alert's terminal: the host answers 03 until it is resumed."""
    _act(alert_id, "suspend_terminal", note, data_dir, database_url)


@alert_app.command("suspend-merchant")
def alert_suspend_merchant(
    alert_id: Annotated[int, typer.Argument(help="the alert's id")],
    note: Note = "",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Suspend the alert's merchant: every terminal of it gets 03 until it is resumed."""
    _act(alert_id, "suspend_merchant", note, data_dir, database_url)


Reason = Annotated[str, typer.Option("--reason", help="why (kept, audited, shown to officers)")]
MidRequired = Annotated[str, typer.Option("--mid", help="merchant id, 15 digits")]


@risk_app.command("hold")
def hold(
    mid: MidRequired, reason: Reason, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Hold a merchant's settlement: it is cleared as usual but paid nothing (T+1, D0) until released."""
    from posgate.risk.disposal import place_hold

    hold_id, new = _store_work(data_dir, database_url, lambda s, now: place_hold(s, mid, reason, ACTOR, now))
    typer.echo(f"merchant {mid} settlement {'held' if new else 'already held'} (hold {hold_id})")


@risk_app.command("release")
def release(
    mid: MidRequired,
    note: Note = "",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Release a merchant's settlement hold: what was withheld goes out with the next payouts."""
    from posgate.risk.disposal import release_hold

    hold_id = _store_work(data_dir, database_url, lambda s, now: release_hold(s, mid, ACTOR, now, note))
    typer.echo(f"merchant {mid} settlement released (hold {hold_id})")


@risk_app.command("holds")
def holds(
    include_released: Annotated[bool, typer.Option("--all", help="released holds too")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Settlement holds, newest first (active ones unless --all)."""
    from posgate.risk.disposal import list_holds

    rows = _store_work(data_dir, database_url, lambda s, now: list_holds(s, include_released))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for h in rows:
        state = f"released {h['released_at'][:16]}" if h["released_at"] else "held"
        cause = f" rule {h['rule']} ({h['rule_version']}) alert {h['alert_id']}" if h["rule"] else ""
        typer.echo(f"{h['id']:>5} {h['mid']} {state:<24} since {h['created_at'][:16]} {h['reason']}{cause}")


@risk_app.command("suspend")
def suspend(
    kind: Annotated[str, typer.Argument(help="terminal | merchant")],
    reason: Reason,
    tid: Tid = None,
    mid: Mid = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Suspend a terminal or merchant for risk: the host answers 03 until it is resumed."""
    from posgate.risk.disposal import suspend as suspend_for_risk

    key = {"terminal": tid, "merchant": mid}.get(kind)
    if kind not in ("terminal", "merchant"):
        _fail(f"suspend a terminal or a merchant, not {kind!r}")
    if key is None:
        _fail(f"a {kind} is named with {'--tid' if kind == 'terminal' else '--mid'}")
    _store_work(data_dir, database_url, lambda s, now: suspend_for_risk(s, kind, key, reason, ACTOR, now))
    typer.echo(f"{kind} {key} suspended")


@risk_app.command("labelled-day")
def labelled_day(
    rules_file: Annotated[
        str, typer.Option("--rules", help="a rule-set TOML file, or 'default'")
    ] = "default",
    seed: Annotated[int, typer.Option("--seed", help="the generator's seed: same seed, same day")] = 11,
    date: Annotated[str, typer.Option("--date", help="the business date YYYY-MM-DD (local)")] = "2026-12-03",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="write the day and its ground truth here (labelled-<date>.csv)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the evaluation as JSON")] = False,
) -> None:
    """Generate a labelled trading day (normal traffic on many terminals with every fraud pattern injected)
    and measure a rule set on it: patterns caught, normal transactions flagged, hits per rule."""
    from posgate.risk.labelled import evaluate, generate_day
    from posgate.risk.rules import default_rule_set, load_rule_set

    try:
        day = dt.date.fromisoformat(date)
        rules = default_rule_set() if rules_file == "default" else load_rule_set(Path(rules_file))
    except ValueError:
        _fail("--date is a date YYYY-MM-DD")
    except PosgateError as error:
        _fail(str(error))
    labelled = generate_day(seed, day)
    if out is not None:
        typer.echo(f"ground truth -> {labelled.write(out)}", err=True)
    report = evaluate(labelled, rules).as_dict()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(
        f"rules {report['rules_version']}: {report['transactions']} transactions, "
        f"{report['injected']} injected; "
        f"normal flagged {report['normal_flagged']} of {report['normal']} ({report['normal_flag_rate']:.2%})"
    )
    for pattern, f in report["patterns"].items():
        typer.echo(f"  {pattern:<20} caught {f['caught']} of {f['instances']}")
    for rule, f in report["rules"].items():
        typer.echo(f"  {rule:<30} injected hits {f['injected_hits']:>4}  normal hits {f['normal_hits']:>4}")


@risk_app.command("backtest")
def backtest(
    rules_file: Annotated[str, typer.Option("--rules", help="a rule-set TOML file, or 'default'")],
    date_from: Annotated[str, typer.Option("--from", help="first business date YYYY-MM-DD (local)")],
    date_to: Annotated[str, typer.Option("--to", help="last business date YYYY-MM-DD (local), included")],
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Replay stored transactions through a rule set, with aggregates and lists as they were at each one:
    hits, would-be declines, amount at risk, precision and recall against the alerts' labels, per rule."""
    from posgate.bootstrap.store import open_store
    from posgate.risk.backtest import run_backtest
    from posgate.risk.rules import default_rule_set, load_rule_set

    settings = _settings(data_dir, database_url)
    try:
        first, last = dt.date.fromisoformat(date_from), dt.date.fromisoformat(date_to)
    except ValueError:
        _fail("--from and --to are dates YYYY-MM-DD")
    if last < first:
        _fail("--to is before --from")
    try:
        rules = default_rule_set() if rules_file == "default" else load_rule_set(Path(rules_file))
    except PosgateError as error:
        _fail(str(error))
    zone = ZoneInfo(settings.timezone)

    def utc(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC).replace(tzinfo=None)

    handle = open_store(settings, load_demo=False)
    try:
        start, end = utc(first), utc(last + dt.timedelta(days=1))
        report = handle.store.transact(lambda s: run_backtest(s, rules, start, end, settings.timezone))
    finally:
        handle.store.close()
    result = report.as_dict()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(
        f"rules {result['rules_version']}: {result['transactions']} transactions, {result['would_decline']} "
        f"would be declined ({result['amount_at_risk_fen'] / 100:.2f} CNY), "
        f"{result['labelled_fraud']} labelled fraud"
    )
    for rule, f in result["rules"].items():
        precision = "-" if f["precision"] is None else f"{f['precision']:.2f}"
        recall = "-" if f["recall"] is None else f"{f['recall']:.2f}"
        typer.echo(
            f"  {rule:<30} hits {f['hits']:>6}  declines {f['declines']:>6}  "
            f"at risk {f['amount_at_risk_fen'] / 100:>12.2f}  precision {precision:>5}  recall {recall:>5}"
        )
