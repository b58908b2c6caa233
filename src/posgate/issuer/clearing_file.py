"""The issuer simulator's clearing file: what one bank approved for the acquirer in a clearing window —
every authorization with a money effect (debit, credit, hold, release, complete) that is approved,
completed or voided (never declined, pending or reversed; balance inquiries move nothing) — as the issuer
sees it: the acquirer's RRN, the network STAN, the amounts, MTI, processing code, auth code, state.

CSV, UTF-8, `\\n` line ends: the header `HEADER`, one line per authorization in id order, and a last line
`CHECKSUM,<count>,<sum of amount_fen>,<sha256 hex of every byte before it>` (the file contract shared with
the acquirer's settlement, see docs/settlement.md). Written streaming: memory does not grow with the day.
The window is given in UTC by the caller (the network's cut-off is the acquirer's: `posgate issuer
clearing-file --date D` computes it the way clearing does).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.files import FILE_MODE, private_dir
from posgate.store.models_simulator import SimAuthorization
from posgate.txnset import TxnState

HEADER = (
    "bank",
    "rrn",
    "stan",
    "transmission_dt",
    "mti",
    "processing_code",
    "amount_fen",
    "auth_code",
    "state",
    "effect",
)
CLEARING_STATES = (TxnState.APPROVED, TxnState.COMPLETED, TxnState.VOIDED)
MONEY_EFFECTS = ("debit", "credit", "hold", "release", "complete")


def write_clearing_file(
    session: Session, bank: str, start_utc: dt.datetime, end_utc: dt.datetime, out: Path
) -> tuple[int, int]:
    """Write `bank`'s clearing file for [start_utc, end_utc) to `out`; returns (lines, Σ amount_fen)."""
    a = SimAuthorization.__table__.c
    stmt = (
        select(
            a.bank,
            a.rrn,
            a.stan,
            a.transmission_dt,
            a.mti,
            a.processing_code,
            a.amount_fen,
            a.auth_code,
            a.state,
            a.effect,
        )
        .where(
            a.bank == bank,
            a.created_at >= start_utc,
            a.created_at < end_utc,
            a.state.in_(CLEARING_STATES),
            a.effect.in_(MONEY_EFFECTS),
        )
        .order_by(a.id)
    )
    private_dir(out.parent)
    digest = hashlib.sha256()
    count = total = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    temporary = out.with_name(out.name + ".part")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(descriptor, FILE_MODE)
    with open(descriptor, "w", encoding="utf-8", newline="") as file:

        def emit(values: tuple[object, ...]) -> None:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(["" if value is None else value for value in values])
            line = buffer.getvalue()
            digest.update(line.encode("utf-8"))
            file.write(line)

        emit(HEADER)
        for row in session.execute(stmt.execution_options(yield_per=5000)):
            emit(tuple(row))
            count += 1
            total += row.amount_fen
        file.write(f"CHECKSUM,{count},{total},{digest.hexdigest()}\n")
    temporary.replace(out)
    return count, total
