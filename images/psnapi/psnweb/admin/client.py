"""The admin panel's side of the PSN API: JSON over HTTP with the signed-in user's token."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx


class ApiError(Exception):
    """The API refused a request (status and its detail) or could not be reached (502)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def path(*parts: str) -> str:
    """/api/v1/<parts>, each part percent-encoded (addresses keep their @)."""
    return "/api/v1/" + "/".join(quote(p, safe="@") for p in parts)


def _detail(resp: httpx.Response) -> str:
    """The API's error message: {"detail": "..."}, or FastAPI's list of validation errors."""
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list):
        msgs = []
        for err in detail:
            where = ".".join(str(p) for p in err.get("loc", [])[1:] if p != "body")
            msgs.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return "; ".join(msgs)
    return f"the API answered HTTP {resp.status_code}"


class Api:
    """Calls of one request of the panel, authenticated with `token` when given."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call(
        self,
        method: str,
        url: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for 204); ApiError for any error status."""
        try:
            resp = await self.http.request(
                method, url, json=json, params=params, headers=self.headers
            )
        except httpx.HTTPError as exc:
            raise ApiError(502, f"The API does not answer ({type(exc).__name__})") from exc
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _detail(resp))
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    async def get(self, url: str, **params: str) -> Any:
        return await self.call("GET", url, params={k: v for k, v in params.items() if v})

    async def post(self, url: str, body: dict[str, Any]) -> Any:
        return await self.call("POST", url, json=body)

    async def patch(self, url: str, body: dict[str, Any]) -> Any:
        return await self.call("PATCH", url, json=body)

    async def delete(self, url: str) -> None:
        await self.call("DELETE", url)
