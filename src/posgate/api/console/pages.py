"""Console pages (GET): dashboard, applications (list, new, detail), review queue, merchants (list,
detail), terminal detail, transaction search, and the sign-in page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from posgate.api.auth import identify
from posgate.api.console.render import console_user, render
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute, Id
from posgate.api.roles import allowed
from posgate.api.routes.transactions import STATES, check_filters, parse_date
from posgate.api.settlement_views import default_day
from posgate.merchants.applications import get_application
from posgate.merchants.business import business_types
from posgate.merchants.errors import FieldError
from posgate.merchants.images import PHOTO_KINDS
from posgate.merchants.queries import (
    application_view,
    dashboard_counts,
    list_applications,
    list_merchants,
    merchant_view,
    search_transactions,
    terminal_view,
)
from posgate.merchants.workflow import STATUSES
from posgate.wallets.orders import search_wallet_orders

router = APIRouter(include_in_schema=False, route_class=CheckedRoute)
Ctx = Annotated[AppContext, Depends(app_context)]
MERCHANT_STATUSES = ("testing", "live", "suspended", "closed")


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ctx: Ctx, next: str = "/") -> HTMLResponse:
    identify(request, ctx)
    return render(request, ctx, "login.html", next_url=next if next.startswith("/") else "/")


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, ctx: Ctx) -> HTMLResponse:
    console_user(request, ctx, "console.dashboard")  # the acquirer's estate: not a partner bank's
    return render(request, ctx, "dashboard.html", nav="dashboard", counts=ctx.transact(dashboard_counts))


@router.get("/applications", response_class=HTMLResponse)
def applications(request: Request, ctx: Ctx, status: str = "") -> HTMLResponse:
    who = console_user(request, ctx, "applications.read")
    if status and status not in STATUSES:
        raise FieldError("status", f"must be one of {', '.join(STATUSES)}")
    rows = ctx.transact(lambda s: list_applications(s, (status,) if status else ()))
    return render(
        request,
        ctx,
        "applications.html",
        nav="applications",
        rows=rows,
        statuses=STATUSES,
        selected=status,
        can_create=allowed(who.role, "applications.create"),
    )


def new_application_page(
    request: Request,
    ctx: AppContext,
    values: dict[str, str | None],
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        ctx,
        "application_new.html",
        status_code=status_code,
        nav="applications",
        values=values,
        error=error,
        business_types=list(business_types().values()),
        photo_kinds=PHOTO_KINDS,
    )


@router.get("/applications/new", response_class=HTMLResponse)
def new_application(request: Request, ctx: Ctx) -> HTMLResponse:
    console_user(request, ctx, "applications.create")
    return new_application_page(request, ctx, {})


def application_page(
    request: Request, ctx: AppContext, application_id: int, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    who = console_user(request, ctx, "applications.read")
    view = ctx.transact(lambda s: application_view(s, get_application(s, application_id)))
    return render(
        request,
        ctx,
        "application_detail.html",
        status_code=status_code,
        nav="applications",
        a=view,
        error=error,
        can_review=allowed(who.role, "applications.review"),
        can_create=allowed(who.role, "applications.create"),
        business_types=list(business_types().values()),
        photo_kinds=PHOTO_KINDS,
    )


@router.get("/applications/{application_id}", response_class=HTMLResponse)
def application(request: Request, ctx: Ctx, application_id: Id) -> HTMLResponse:
    return application_page(request, ctx, application_id)


@router.get("/review", response_class=HTMLResponse)
def review_queue(request: Request, ctx: Ctx) -> HTMLResponse:
    console_user(request, ctx, "applications.review")

    def load(session):  # type: ignore[no-untyped-def]
        queue = list_applications(session, ("submitted", "under_review"))
        return [application_view(session, get_application(session, a["id"])) for a in reversed(queue)]

    return render(request, ctx, "review.html", nav="review", rows=ctx.transact(load))


@router.get("/merchants", response_class=HTMLResponse)
def merchants(request: Request, ctx: Ctx, status: str = "") -> HTMLResponse:
    console_user(request, ctx, "merchants.read")
    if status and status not in MERCHANT_STATUSES:
        raise FieldError("status", f"must be one of {', '.join(MERCHANT_STATUSES)}")
    rows = ctx.transact(lambda s: list_merchants(s, status or None))
    return render(
        request,
        ctx,
        "merchants.html",
        nav="merchants",
        rows=rows,
        statuses=MERCHANT_STATUSES,
        selected=status,
    )


def merchant_page(
    request: Request, ctx: AppContext, mid: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    who = console_user(request, ctx, "merchants.read")
    view = ctx.transact(lambda s: merchant_view(s, mid))
    can_statement = allowed(who.role, "transactions.read")
    statement_day = ctx.transact(lambda s: default_day(s, ctx.settings.timezone)) if can_statement else None
    return render(
        request,
        ctx,
        "merchant_detail.html",
        status_code=status_code,
        nav="merchants",
        m=view,
        error=error,
        can_lifecycle=allowed(who.role, "merchants.lifecycle"),
        can_provision=allowed(who.role, "terminals.provision"),
        can_statement=can_statement,
        statement_day=statement_day,
    )


@router.get("/merchants/{mid}", response_class=HTMLResponse)
def merchant(request: Request, ctx: Ctx, mid: str) -> HTMLResponse:
    return merchant_page(request, ctx, mid)


def terminal_page(
    request: Request,
    ctx: AppContext,
    tid: str,
    error: str | None = None,
    status_code: int = 200,
    export: object = None,
) -> HTMLResponse:
    who = console_user(request, ctx, "merchants.read")
    view = ctx.transact(lambda s: terminal_view(s, tid))
    return render(
        request,
        ctx,
        "terminal_detail.html",
        status_code=status_code,
        nav="merchants",
        term=view,
        error=error,
        export=export,
        can_keys=allowed(who.role, "terminals.keys"),
        can_lifecycle=allowed(who.role, "merchants.lifecycle"),
        profiles_allowed=ctx.settings.env != "production",
    )


@router.get("/terminals/{tid}", response_class=HTMLResponse)
def terminal(request: Request, ctx: Ctx, tid: str) -> HTMLResponse:
    return terminal_page(request, ctx, tid)


@router.get("/transactions", response_class=HTMLResponse)
def transactions(
    request: Request,
    ctx: Ctx,
    tid: str = "",
    mid: str = "",
    state: str = "",
    date_from: str = "",
    date_to: str = "",
) -> HTMLResponse:
    console_user(request, ctx, "transactions.read")
    check_filters(state or None, 200)
    start, end = parse_date(date_from, "date_from"), parse_date(date_to, "date_to")
    rows = ctx.transact(
        lambda s: search_transactions(s, tid or None, mid or None, state or None, start, end, 200)
    )
    wallet_rows = ctx.transact(lambda s: search_wallet_orders(s, tid or None, mid or None, start, end, 200))
    query = {"tid": tid, "mid": mid, "state": state, "date_from": date_from, "date_to": date_to}
    return render(
        request,
        ctx,
        "transactions.html",
        nav="transactions",
        rows=rows,
        wallet_rows=wallet_rows,
        q=query,
        states=STATES,
    )
