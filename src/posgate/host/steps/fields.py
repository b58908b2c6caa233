"""CheckFields: the message carries what its kind needs, and nothing the spec does not list.
RefuseUnsupported: what `classify` did not recognise."""

from __future__ import annotations

import logging

from posgate.cards.tlv import decode_tlv
from posgate.errors import PosgateError
from posgate.host.context import Kind, TxnContext
from posgate.host.steps.base import Step
from posgate.iso8583 import pos_values
from posgate.iso8583.private_fields import parse_field60
from posgate.iso8583.reasons import Reason
from posgate.txnset import NETWORK_MANAGEMENT_MTIS, row_of

SUPPORTED_CURRENCIES = ("156",)

log = logging.getLogger("posgate.host")


def _format_error(ctx: TxnContext, problem: str) -> None:
    """Decline 30 and say why in the log (values are quoted with repr: no control character gets through)."""
    ctx.detail = problem
    log.warning("format error in %s stan=%r tid=%r: %s", ctx.mti, ctx.stan, ctx.tid, problem)
    ctx.result.decline(Reason.FORMAT_ERROR)


class CheckFields(Step):
    """Needs: the decoded request. Runs first, before any MAC is trusted.
    Declines: 30 (a required field missing; card data neither in 2 nor 35; a field the kind does not carry
    or a value the spec does not list: `iso8583.pos_values`; field 55 not BER-TLV, or its amount 9F02 or
    currency 5F2A not those of fields 4 and 49), 13 (amount zero), 61 (amount above the per-transaction
    ceiling `max_amount_fen`), 12 (currency other than CNY)."""

    def __init__(self, kind: Kind, max_amount_fen: int) -> None:
        self.kind = kind
        self.max_amount_fen = max_amount_fen
        row = row_of(kind)
        self.required = row.required
        self.needs_card = row.card
        self.needs_amount = row.amount

    async def prepare(self, ctx: TxnContext) -> None:
        request = ctx.request
        missing = [f for f in self.required if f not in request]
        if missing or (self.needs_card and "2" not in request and "35" not in request):
            _format_error(ctx, "missing field " + (",".join(missing) or "2/35"))
        elif (bad := pos_values.problem(self.kind.value, request) or _icc_problem(request)) is not None:
            _format_error(ctx, bad)
        elif self.needs_amount and int(request["4"]) <= 0:
            ctx.result.decline(Reason.INVALID_AMOUNT)
        elif self.needs_amount and int(request["4"]) > self.max_amount_fen:
            ctx.result.decline(Reason.OVER_AMOUNT_LIMIT)
        elif "49" in request and request["49"] not in SUPPORTED_CURRENCIES:
            ctx.result.decline(Reason.INVALID_TRANSACTION)


def _icc_problem(request: dict[str, str]) -> str | None:
    """Field 55 against fields 4 and 49: the issuer's ARQC covers the chip's amount (9F02) and currency
    (5F2A), not fields 4 and 49, so they must agree — else field 4 could be changed (and, on a CUP ECB
    terminal, the change cancelled inside a tag no cryptogram covers) under a valid ARQC."""
    if "55" not in request:
        return None
    try:
        tags = decode_tlv(bytes.fromhex(request["55"]))
    except (PosgateError, ValueError):
        return "field 55: not BER-TLV"
    if "4" in request and "9F02" in tags and tags["9F02"].hex() != request["4"]:
        return "field 55: 9F02 (amount) differs from field 4"
    if "49" in request and "5F2A" in tags and tags["5F2A"].hex() != request["49"].zfill(4):
        return "field 55: 5F2A (currency) differs from field 49"
    return None


class RefuseUnsupported(Step):
    """Needs: a request `pipeline.classify` did not recognise. Declines: 30 for a network management
    message (0800, 0820) whose 60.3 is not one of its listed codes (or whose 60 does not parse), 40 for
    anything else (a transaction the host does not offer)."""

    async def prepare(self, ctx: TxnContext) -> None:
        if ctx.mti in NETWORK_MANAGEMENT_MTIS:
            try:
                nmc = parse_field60(ctx.request["60"]).nmc if "60" in ctx.request else "absent"
                problem = f"field 60: 60.3 {nmc!r} is not a network management code of {ctx.mti}"
            except PosgateError as exc:
                problem = str(exc)
            _format_error(ctx, problem)
        else:
            ctx.result.decline(Reason.FUNCTION_NOT_SUPPORTED)
