"""Authentication: a bearer token for an administrator's credentials, and who they belong to."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from psnweb.api.auth import Authenticator, Principal
from psnweb.api.directory import Session
from psnweb.api.models import MeOut, TokenIn, TokenOut
from psnweb.api.routes.common import errors, get_principal, get_session, resource_router

# POST /auth/token takes no credentials: its own router, without the 401/403 of the others.
auth_router = APIRouter()
router = resource_router()


@auth_router.post("/auth/token", response_model=TokenOut, responses=errors(401, 403))
def create_token(
    body: TokenIn, request: Request, session: Session = Depends(get_session)
) -> TokenOut:
    """A bearer token for an administrator's user name and password."""
    auth: Authenticator = request.app.state.auth
    return auth.issue(auth.login(session, body.username, body.password))


@router.get("/me", response_model=MeOut)
def me(principal: Principal = Depends(get_principal)) -> MeOut:
    """Who the credentials belong to."""
    return MeOut(username=principal.username, role=principal.role, tenant=principal.tenant)
