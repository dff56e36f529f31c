"""The endpoints under /api/v1: one module per resource over the shared pattern of `common`
(authenticated session and principal, a lookup that answers 404 and checks the tenant)."""

from __future__ import annotations

from psnweb.api.routes import domains, groups, me, tenants, users

# In the order of the OpenAPI description.
auth_router = me.auth_router
routers = (me.router, tenants.router, domains.router, users.router, groups.router)
