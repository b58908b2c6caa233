"""`/api/users` and `/api/api-keys` (admin only), and `/api/business-types` (reference data)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from posgate.api import users
from posgate.api.auth import require
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute, Id
from posgate.api.passwords import check_password_policy, hash_password
from posgate.api.users import Principal
from posgate.merchants.business import business_types

router = APIRouter(tags=["users and keys"], route_class=CheckedRoute)
Ctx = Annotated[AppContext, Depends(app_context)]
Admin = Annotated[Principal, Depends(require("users.manage"))]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str
    role: str
    issuer: str | None = None  # role bank: the issuer route it is scoped to


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    role: str
    issuer: str | None = None  # role bank: the issuer route it is scoped to


@router.get("/api/users", summary="Console users")
def get_users(ctx: Ctx, who: Admin) -> list[dict[str, Any]]:
    return ctx.transact(users.list_users)


@router.post("/api/users", status_code=201, summary="Create a console user")
def post_user(body: NewUser, ctx: Ctx, who: Admin) -> dict[str, Any]:
    check_password_policy(body.password)
    with ctx.hash_worker.admitted():  # Argon2 on the password pool, not inside the unit of work
        hashed = ctx.hash_worker.run(lambda: hash_password(body.password))
    ctx.transact(
        lambda s: users.create_user(
            s, body.username, body.password, body.role, who.username, password_hash=hashed, issuer=body.issuer
        )
    )
    return {"username": body.username, "role": body.role, "active": True, "issuer": body.issuer}


@router.post("/api/users/{username}/deactivate", summary="Deactivate a user (their sessions stop working)")
def deactivate(username: str, ctx: Ctx, who: Admin) -> dict[str, Any]:
    ctx.transact(lambda s: users.set_user_active(s, username, False, who.username))
    return {"username": username, "active": False}


@router.post("/api/users/{username}/activate", summary="Activate a user again")
def activate(username: str, ctx: Ctx, who: Admin) -> dict[str, Any]:
    ctx.transact(lambda s: users.set_user_active(s, username, True, who.username))
    return {"username": username, "active": True}


@router.get("/api/api-keys", summary="API keys (prefix and label only)")
def get_keys(ctx: Ctx, who: Admin) -> list[dict[str, Any]]:
    return ctx.transact(users.list_api_keys)


@router.post("/api/api-keys", status_code=201, summary="Create an API key for a machine (shown once)")
def post_key(body: NewApiKey, ctx: Ctx, who: Admin) -> dict[str, Any]:
    key_id, key = ctx.transact(
        lambda s: users.create_api_key(s, body.label, body.role, who.username, body.issuer)
    )
    return {"id": key_id, "key": key, "role": body.role, "label": body.label, "issuer": body.issuer}


@router.post("/api/api-keys/{key_id}/revoke", summary="Revoke an API key")
def revoke_key(key_id: Id, ctx: Ctx, who: Admin) -> dict[str, Any]:
    ctx.transact(lambda s: users.revoke_api_key(s, key_id, who.username))
    return {"id": key_id, "revoked": True}


@router.get("/api/business-types", summary="Business types and their MCCs", tags=["reference"])
def get_business_types(who: Annotated[Principal, Depends(require("reference.read"))]) -> list[dict[str, str]]:
    return [t.model_dump() for t in business_types().values()]
