"""The alerts desk in the console (risk officers; admin): the queue with filters, age and assignment
(`/risk/alerts`), one case (`/risk/alerts/{id}`: the transaction and the rules that hit, the card's recent
history masked, the merchant's profile with its settlement hold and a 30-day chart, the terminal's reported
locations plotted against its registered one) with its decisions — dismiss, confirm fraud (the card is
blocked), hold or release settlement, suspend the terminal or merchant, take or give back the case — as
forms carrying the session's CSRF token; and the risk lists (`/risk/lists`). Charts are SVG drawn here
(the console's CSP allows no script or inline style)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from posgate.api import risk_operations as ops
from posgate.api.auth import check_csrf
from posgate.api.console.render import console_user, render
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute, Id, parse_int
from posgate.api.roles import allowed
from posgate.merchants.errors import FieldError
from posgate.risk.alerts import ALERT_STATES
from posgate.risk.desk import alert_queue, queue_rules
from posgate.risk.lists import FLAGS, LIST_KINDS, active_entries
from posgate.store.base import utcnow

router = APIRouter(include_in_schema=False, route_class=CheckedRoute)
Ctx = Annotated[AppContext, Depends(app_context)]
STEPS = (
    "dismiss",
    "confirm",
    "hold",
    "release",
    "suspend_terminal",
    "suspend_merchant",
    "assign",
    "unassign",
)
CHART_W, CHART_H, PLOT = 600, 160, 240


def age(seconds: int) -> str:
    """A queue age, short.

    >>> age(42), age(3_700), age(200_000)
    ('42 s', '1 h 1 min', '2 d 7 h')
    """
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def daily_bars(daily: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The merchant's 30 days as SVG bars (x, y, width, height) scaled to the busiest day."""
    top = max((d["amount_fen"] for d in daily), default=0) or 1
    width = CHART_W / max(len(daily), 1)
    bars = []
    for n, day in enumerate(daily):
        height = round(day["amount_fen"] / top * (CHART_H - 20), 1)
        bars.append(
            {
                "x": round(n * width + 1, 1),
                "y": round(CHART_H - height, 1),
                "w": round(width - 2, 1),
                "h": height,
                **day,
            }
        )
    return bars


def location_plot(terminal: dict[str, Any] | None) -> dict[str, Any] | None:
    """The terminal's reported locations and its registered one in a square SVG, centred on the
    registered location (or the first report), scaled so the farthest point fits."""
    if terminal is None:
        return None
    points = [(p["lat"], p["lon"]) for p in terminal["reported"]]
    home = terminal["registered"]
    centre = (home["lat"], home["lon"]) if home else (points[0] if points else None)
    if centre is None:
        return None
    span = max(
        [abs(lat - centre[0]) for lat, _ in points] + [abs(lon - centre[1]) for _, lon in points] + [0.01]
    )
    scale = (PLOT / 2 - 12) / span

    def at(lat: float, lon: float) -> dict[str, float]:
        return {
            "x": round(PLOT / 2 + (lon - centre[1]) * scale, 1),
            "y": round(PLOT / 2 - (lat - centre[0]) * scale, 1),
        }

    return {
        "size": PLOT,
        "home": at(*centre) if home else None,
        "points": [at(p["lat"], p["lon"]) | p for p in terminal["reported"]],
        "span_deg": round(span, 4),
    }


@router.get("/risk/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request,
    ctx: Ctx,
    state: str = "open",
    rule: str = "",
    mid: str = "",
    tid: str = "",
    assigned: str = "",
) -> HTMLResponse:
    who = console_user(request, ctx, "risk.read")
    if state not in (*ALERT_STATES, "all"):
        raise FieldError("state", f"must be one of {', '.join(ALERT_STATES)} or all")
    assigned_to = who.username if assigned == "me" else ("-" if assigned == "none" else None)
    now = utcnow()

    def read(session: Any) -> tuple[list[dict[str, Any]], list[str]]:
        rows = alert_queue(
            session,
            now,
            state=None if state == "all" else state,
            rule=rule or None,
            mid=mid.strip() or None,
            tid=tid.strip() or None,
            assigned_to=assigned_to,
        )
        return rows, queue_rules(session)

    rows, rules = ctx.transact(read)
    for row in rows:
        row["age"] = age(row["age_s"])
    query = {"state": state, "rule": rule, "mid": mid, "tid": tid, "assigned": assigned}
    return render(
        request, ctx, "risk_alerts.html", nav="risk", rows=rows, rules=rules, states=ALERT_STATES, q=query
    )


@router.get("/risk/alerts/{alert_id}", response_class=HTMLResponse)
def case_page(request: Request, ctx: Ctx, alert_id: Id) -> HTMLResponse:
    who = console_user(request, ctx, "risk.read")
    case = ops.case(ctx, alert_id)
    merchant = case["merchant"]
    return render(
        request,
        ctx,
        "risk_alert.html",
        nav="risk",
        c=case,
        a=case["alert"],
        age=age(case["alert"]["age_s"]),
        bars=daily_bars(merchant["daily"]) if merchant else [],
        chart={"w": CHART_W, "h": CHART_H},
        plot=location_plot(case["terminal"]),
        can_decide=allowed(who.role, "risk.decide"),
    )


@router.post("/risk/alerts/{alert_id}")
async def case_form(request: Request, ctx: Ctx, alert_id: Id) -> Response:
    who = await run_in_threadpool(console_user, request, ctx, "risk.decide")
    form = await request.form()
    check_csrf(who, _text(form.get("csrf_token")))
    step = _text(form.get("action")) or ""
    if step not in STEPS:
        raise FieldError("action", f"must be one of {', '.join(STEPS)}")
    note = (_text(form.get("note")) or "").strip()[:200]
    await run_in_threadpool(ops.decide, ctx, who, alert_id, step, note)
    return RedirectResponse(f"/risk/alerts/{alert_id}?done=risk_{step}", status_code=303)


@router.get("/risk/lists", response_class=HTMLResponse)
def lists_page(request: Request, ctx: Ctx, kind: str = "") -> HTMLResponse:
    who = console_user(request, ctx, "risk.read")
    if kind and kind not in LIST_KINDS:
        raise FieldError("kind", f"must be one of {', '.join(LIST_KINDS)}")
    rows = ctx.transact(lambda s: active_entries(s, utcnow(), kind or None))
    return render(
        request,
        ctx,
        "risk_lists.html",
        nav="risk",
        rows=rows,
        kinds=LIST_KINDS,
        lists=sorted({action for _, action in FLAGS}),
        selected=kind,
        can_decide=allowed(who.role, "risk.decide"),
    )


@router.post("/risk/lists")
async def lists_form(request: Request, ctx: Ctx) -> Response:
    who = await run_in_threadpool(console_user, request, ctx, "risk.decide")
    form = await request.form()
    check_csrf(who, _text(form.get("csrf_token")))
    op = _text(form.get("op")) or "add"
    kind, action = _text(form.get("kind")) or "", _text(form.get("list")) or "block"
    value, card_kind = _text(form.get("value")) or "", _text(form.get("card_kind")) or None
    if op == "remove":
        entry = parse_int(_text(form.get("entry")) or "", "entry", 1, 2**31 - 1)
        await run_in_threadpool(ops.remove_list_entry, ctx, who, entry)
    elif op == "add":
        expires = _expiry(_text(form.get("expires_at")), ctx.settings.timezone)
        reason = _text(form.get("reason")) or ""
        await run_in_threadpool(ops.add_to_list, ctx, who, kind, action, value, reason, expires, card_kind)
    else:
        raise FieldError("op", "must be add or remove")
    return RedirectResponse(f"/risk/lists?done=risk_list_{op}", status_code=303)


def _expiry(text: str | None, zone: str) -> dt.datetime | None:
    """A `datetime-local` value (the acquirer's local time, as on the command line) → naive UTC."""
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise FieldError("expires_at", f"not a date-time: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(zone))
    return when.astimezone(dt.UTC).replace(tzinfo=None)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
