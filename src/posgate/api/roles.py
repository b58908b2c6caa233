"""Roles and what each may do: one table, checked by every route (`auth.require`)."""

from __future__ import annotations

#: bank: a partner bank's user, scoped to one issuer (`Principal.issuer`): its own cards' KPIs, nothing else
ROLES = ("operator", "reviewer", "risk", "finance", "admin", "bank")

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "applications.create": ("operator", "admin"),
    "applications.read": ("operator", "reviewer", "risk", "admin"),
    "applications.review": ("reviewer", "admin"),
    "merchants.read": ("operator", "reviewer", "risk", "finance", "admin"),
    "merchants.lifecycle": ("risk", "admin"),
    "terminals.provision": ("reviewer", "admin"),
    "terminals.keys": ("reviewer", "admin"),
    "transactions.read": ("risk", "finance", "admin"),
    "qr.pay": ("operator", "admin"),  # the cashier API: wallet orders, scans, status, close
    "qr.refund": ("operator", "admin"),
    "users.manage": ("admin",),
    "console.dashboard": ("operator", "reviewer", "risk", "finance", "admin"),
    "kpi.read": ("operator", "risk", "finance", "admin", "bank"),
    "risk.read": ("risk", "admin"),  # the alerts desk, lists and holds
    "risk.decide": ("risk", "admin"),  # verdicts, holds, suspensions, list changes
    "reference.read": ROLES,
}


def allowed(role: str, permission: str) -> bool:
    """Whether `role` has `permission`.

    >>> allowed("operator", "applications.review"), allowed("reviewer", "applications.review")
    (False, True)
    """
    return role in PERMISSIONS[permission]
