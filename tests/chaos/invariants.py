"""What must hold after a chaos run, checked on the store against what the terminals saw.

Run after the recovery window, with the stack stopped, and after the clearing of every date the run
touched. Each check counts what it examined (`checked`) and lists what broke it (`violations`, masked PANs
only).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from posgate.issuer.clearing_file import write_clearing_file
from posgate.security.at_rest import CardVault, load_or_create_keyring
from posgate.settlement.clearing import run_clearing
from posgate.settlement.clearing_day import clearing_date, clearing_window
from posgate.settlement.ledger_store import trial_balance, unbalanced_entries, verify_balances
from posgate.settlement.rates import load_rates
from posgate.settlement.reconcile import reconcile_issuer_file
from posgate.store.acquirer import rrn_of
from posgate.store.runtime import Store
from tests.chaos.load import Sale

SHOWN = 5  # violations kept per check for the report (the count is exact)


@dataclass
class Check:
    name: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.violations.append(message)

    @property
    def ok(self) -> bool:
        return not self.violations

    def line(self) -> str:
        status = "ok" if self.ok else f"{len(self.violations)} VIOLATIONS"
        shown = "".join(f"\n      - {v}" for v in self.violations[:SHOWN])
        more = f"\n      … {len(self.violations) - SHOWN} more" if len(self.violations) > SHOWN else ""
        return f"  {self.name:<34} checked {self.checked:>6}  {status}{shown}{more}"


def _rows(engine: Engine, sql: str) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return list(conn.execute(text(sql)))


def clear_every_date(engine: Engine, data_dir: Path, timezone: str = "Asia/Shanghai") -> list[str]:
    """Run the clearing (open day allowed) of every date the run's transactions fall on; a line per run."""
    rates = load_rates(None, data_dir)
    store = Store(engine, threads=1, inline=True)
    lines = []
    for day in _clearing_dates(engine, data_dir, timezone):
        result = run_clearing(store, day, rates, timezone, allow_open_day=True)
        lines.append(f"clearing {day}: {result.cleared} cleared, {result.pending} pending")
    return lines


def _clearing_dates(engine: Engine, data_dir: Path, timezone: str) -> list[dt.date]:
    rates = load_rates(None, data_dir)
    zone = ZoneInfo(timezone)
    created = [row[0] for row in _rows(engine, "select created_at from transactions")]
    return sorted({clearing_date(_naive(c), zone, rates.clearing.cut_off_local) for c in created})


def issuer_files_reconcile(engine: Engine, data_dir: Path, timezone: str = "Asia/Shanghai") -> Check:
    """Each demo bank's clearing file (the simulator's books) of each date the run touched, reconciled
    with the host's records the way `posgate reconcile issuer` does: no line missing on either side, no
    amount differing. The files are written into the data folder (and so scanned)."""
    check = Check("issuer files reconcile")
    rates = load_rates(None, data_dir)
    cut_off = rates.clearing.cut_off_local
    store = Store(engine, threads=1, inline=True)
    banks = [row[0] for row in _rows(engine, "select name from sim_banks order by name")]
    for day in _clearing_dates(engine, data_dir, timezone):
        start, end = clearing_window(day, ZoneInfo(timezone), cut_off)
        for bank in banks:
            path = data_dir / "clearing" / f"{bank.replace(' ', '-')}-{day}.csv"
            store.transact(lambda s, b=bank, p=path, w=(start, end): write_clearing_file(s, b, *w, p))
            result = reconcile_issuer_file(store, path, day, timezone, cut_off, bank)
            check.checked += result.matched + len(result.differences)
            check.violations.extend(
                f"{bank} {day}: {d.status} RRN {d.rrn} issuer {d.issuer_amount_fen} host {d.host_amount_fen}"
                for d in result.differences
            )
    return check


def _naive(value: object) -> dt.datetime:
    if isinstance(value, str):  # SQLite through a plain connection
        return dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value


def check_all(
    engine: Engine, data_dir: Path, sales: list[Sale], accounts_before: dict[int, tuple[str, int, int]]
) -> list[Check]:
    vault = CardVault(load_or_create_keyring(data_dir / "master.key"))
    return [
        approved_sales_stored_once(engine, vault, sales),
        terminal_reversals_honoured(engine, sales),
        issuer_books_match(engine),
        issuer_accounts_agree(engine, accounts_before),
        nothing_reversed_and_cleared(engine),
        issuer_files_reconcile(engine, data_dir),
        ledger_balances(engine),
        no_duplicate_rrn(engine, sales),
        nothing_left_pending(engine),
    ]


_SALE_ROWS = (
    "select id, tid, batch_no, stan, rrn, state, amount_fen, auth_code, pan_hash, stand_in, response_code,"
    " trace, created_at, updated_at from transactions where kind = 'sale' and mti = '0200'"
)


@dataclass(frozen=True)
class _Sale:
    """A sale row; `key` is the RRN the host sent the issuer (from the row id: the `rrn` column is only
    written with the outcome, so a row left pending has none)."""

    id: int
    tid: str
    batch_no: str
    stan: str
    rrn: str | None
    state: str
    amount_fen: int
    auth_code: str | None
    pan_hash: str | None
    stand_in: bool
    response_code: str | None
    trace: str | None
    created_at: object
    updated_at: object

    @property
    def key(self) -> str:
        return rrn_of(self.id)

    def detail(self) -> str:
        """What the host recorded, for a violation's report (no card data in any of it)."""
        return (
            f"host row {self.id} TID {self.tid} STAN {self.stan} {self.state} rc={self.response_code}"
            f" created {self.created_at} updated {self.updated_at} trace=[{self.trace}]"
        )


def _sales(engine: Engine) -> list[_Sale]:
    return [_Sale(*row) for row in _rows(engine, _SALE_ROWS)]


def approved_sales_stored_once(engine: Engine, vault: CardVault, sales: list[Sale]) -> Check:
    """Every sale a terminal saw approved: one row (its TID, batch and STAN), approved, with the RRN,
    authorization code and amount the terminal got, and the card it read."""
    check = Check("approved sale stored exactly once")
    by_key = defaultdict(list)
    for row in _sales(engine):
        by_key[(row.tid, row.batch_no, row.stan)].append(row)
    for sale in sales:
        if sale.outcome != "approved":
            continue
        check.checked += 1
        rows = by_key.get((sale.tid, sale.batch, sale.stan), [])
        where = f"TID {sale.tid} STAN {sale.stan} RRN {sale.rrn}"
        if len(rows) != 1:
            check.fail(f"{where}: {len(rows)} rows")
            continue
        row = rows[0]
        seen = (sale.rrn, sale.auth_code, sale.amount_fen, vault.pan_hash(sale.pan))
        if row.state != "approved" or (row.rrn, row.auth_code, row.amount_fen, row.pan_hash) != seen:
            check.fail(f"{where}: stored as {row.state} RRN {row.rrn} amount {row.amount_fen}")
    return check


def terminal_reversals_honoured(engine: Engine, sales: list[Sale]) -> Check:
    """A sale whose terminal got `00` to its reversal is not approved at the host."""
    check = Check("terminal reversal honoured")
    rows = {(r.tid, r.batch_no, r.stan): r for r in _sales(engine)}
    for sale in sales:
        if sale.reversed_by_terminal:
            check.checked += 1
            row = rows.get((sale.tid, sale.batch, sale.stan))
            if row is not None and row.state not in ("reversed", "declined"):
                check.fail(f"TID {sale.tid} STAN {sale.stan}: reversed by its terminal; {row.detail()}")
    return check


def issuer_books_match(engine: Engine) -> Check:
    """Each issuer debit or hold still standing belongs to a transaction the host approved (same RRN and
    amount, not reversed); each sale the host approved (stand-in aside) stands at its issuer."""
    check = Check("issuer debit ⇔ approved txn")
    host = {r.key: r for r in _sales(engine)}
    auths = _rows(
        engine,
        "select bank, rrn, stan, state, effect, amount_fen, created_at from sim_authorizations"
        " where mti in ('0200', '0100') and effect in ('debit', 'hold')",
    )
    standing = {}
    for auth in auths:
        check.checked += 1
        where = f"{auth.bank} RRN {auth.rrn} STAN {auth.stan}"
        if auth.state == "reversed":
            continue
        if auth.state != "approved":
            check.fail(f"{where}: issuer authorization {auth.state}")
            continue
        standing[auth.rrn] = auth
        txn = host.get(auth.rrn)
        if txn is None or txn.state != "approved" or txn.amount_fen != auth.amount_fen:
            state = "no transaction" if txn is None else f"host {txn.state} {txn.amount_fen}; {txn.detail()}"
            stands = f"issuer {auth.effect} {auth.amount_fen} stands"
            check.fail(f"{where} at {auth.created_at}: {stands}, {state}")
    for txn in host.values():
        if txn.state == "approved" and not txn.stand_in:
            check.checked += 1
            if txn.key not in standing:
                check.fail(f"RRN {txn.key}: approved at the host, no standing debit at the issuer")
    return check


def account_snapshot(engine: Engine) -> dict[int, tuple[str, int, int]]:
    """Every issuer account as it is now: id → (kind, balance, held). Taken before the load."""
    rows = _rows(engine, "select id, kind, balance_fen, held_fen from sim_accounts")
    return {r.id: (r.kind, r.balance_fen, r.held_fen) for r in rows}


def issuer_accounts_agree(engine: Engine, before: dict[int, tuple[str, int, int]]) -> Check:
    """Each issuer account moved by exactly its standing debits since the snapshot, and holds nothing
    more than it held."""
    check = Check("issuer accounts = standing debits")
    spent: Counter[int] = Counter()
    for row in _rows(
        engine,
        "select account_id, amount_fen from sim_authorizations where state = 'approved' and effect = 'debit'",
    ):
        spent[row.account_id] += row.amount_fen
    for account_id, (kind, balance, held) in account_snapshot(engine).items():
        check.checked += 1
        _, balance_before, held_before = before.get(account_id, (kind, balance, held))
        moved = balance - balance_before if kind == "credit" else balance_before - balance
        if moved != spent[account_id] or held != held_before:
            check.fail(
                f"account {account_id} ({kind}): moved {moved}, standing debits {spent[account_id]},"
                f" held {held_before} → {held}"
            )
    return check


def nothing_reversed_and_cleared(engine: Engine) -> Check:
    """After the clearing: a sale clears (net of unwinds) its amount when approved and nothing otherwise,
    and nothing clears whose issuer authorization was reversed."""
    check = Check("nothing reversed and cleared")
    net: Counter[int] = Counter()
    for row in _rows(engine, "select transaction_id, adjusts_id, kind, amount_fen from clearing_entries"):
        net[row.adjusts_id if row.kind in ("unwind", "reclear") else row.transaction_id] += row.amount_fen
    reversed_at_issuer = {
        r.rrn for r in _rows(engine, "select rrn from sim_authorizations where state = 'reversed'") if r.rrn
    }
    for txn in _sales(engine):
        check.checked += 1
        expected = txn.amount_fen if txn.state == "approved" else 0
        if net[txn.id] != expected:
            check.fail(f"RRN {txn.key} ({txn.state}): cleared {net[txn.id]}, expected {expected}")
        elif net[txn.id] and txn.key in reversed_at_issuer:
            check.fail(f"RRN {txn.key}: cleared {net[txn.id]} but reversed at the issuer")
    return check


def ledger_balances(engine: Engine) -> Check:
    """Σ postings = 0, every entry balances, the per-day totals equal the postings."""
    check = Check("ledger balances")
    store = Store(engine, threads=1, inline=True)

    def work(session):  # type: ignore[no-untyped-def]
        return trial_balance(session), unbalanced_entries(session), verify_balances(session)

    total, unbalanced, drift = store.transact(work)
    check.checked = 3 + len(_rows(engine, "select id from ledger_entries"))
    if total:
        check.fail(f"trial balance {total}")
    check.violations.extend(f"entry {key} off by {diff}" for key, diff in unbalanced)
    check.violations.extend(drift)
    return check


def no_duplicate_rrn(engine: Engine, sales: list[Sale]) -> Check:
    """No RRN twice: in the host's transactions, among the issuer's authorizations of one MTI, and among
    the approvals the terminals saw."""
    check = Check("no duplicate RRN")
    host_rows = _rows(engine, "select id, rrn from transactions where rrn is not null")
    host = Counter(r.rrn for r in host_rows)
    check.violations.extend(f"row {r.id} carries RRN {r.rrn}" for r in host_rows if r.rrn != rrn_of(r.id))
    issuer = Counter(
        (r.bank, r.mti, r.rrn)
        for r in _rows(engine, "select bank, mti, rrn from sim_authorizations where rrn is not null")
    )
    seen = Counter(s.rrn for s in sales if s.outcome == "approved")
    for name, counts in (("host", host), ("issuer", issuer), ("terminals", seen)):
        check.checked += len(counts)
        check.violations.extend(f"{name}: {key} × {n}" for key, n in counts.items() if n > 1)
    return check


def nothing_left_pending(engine: Engine) -> Check:
    """After the recovery window: no transaction pending or timed out, no SAF entry waiting, no issuer
    authorization left half-done."""
    check = Check("nothing left pending")
    for row in _rows(engine, "select id, kind, state from transactions"):
        check.checked += 1
        if row.state in ("pending", "timed_out"):
            check.fail(f"RRN {rrn_of(row.id)} {row.kind} left {row.state}")
    for row in _rows(engine, "select id, mti, status, attempts, last_error from saf_entries"):
        check.checked += 1
        if row.status == "pending":
            check.fail(f"SAF {row.mti} #{row.id} still pending after {row.attempts} attempts")
    for row in _rows(engine, "select rrn, state from sim_authorizations"):
        check.checked += 1
        if row.state == "pending":
            check.fail(f"issuer authorization RRN {row.rrn} left pending")
    return check


def quiescent(engine: Engine) -> bool:
    """Nothing in flight any more: no pending or timed-out transaction, no SAF entry waiting."""
    rows = _rows(
        engine,
        "select (select count(*) from transactions where state in ('pending', 'timed_out'))"
        " + (select count(*) from saf_entries where status = 'pending')",
    )
    return rows[0][0] == 0


def timed_out_sales_reversed(engine: Engine, sales: list[Sale]) -> Check:
    """Every sale a terminal got no answer to was reversed by that terminal (its 0400 answered `00`), and
    the host holds it reversed or declined — or never recorded it. For runs where every terminal reverses
    (the POS policy); the chaos runs' abandoning terminals are checked by `nothing_left_pending`."""
    check = Check("timed-out sale reversed")
    states = {(r.tid, r.batch_no, r.stan): r.state for r in _sales(engine)}
    for sale in sales:
        if sale.outcome != "unknown":
            continue
        check.checked += 1
        where = f"TID {sale.tid} STAN {sale.stan}"
        if not sale.reversed_by_terminal:
            check.fail(f"{where}: no answer, and its reversal was never answered 00")
        state = states.get((sale.tid, sale.batch, sale.stan))
        if state is not None and state not in ("reversed", "declined"):
            check.fail(f"{where}: left {state} at the host")
    return check
