"""The admin panel's side of the PSN API: JSON over HTTP with the signed-in user's token."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from psnweb.admin.i18n import translate


class ApiError(Exception):
    """The API refused a request (status and its detail, in the API's words) or could not be
    reached (502). With `params`, `detail` is the panel's own message: a msgid of the catalogue
    with its {placeholders}."""

    def __init__(self, status: int, detail: str, params: dict[str, str] | None = None) -> None:
        self.status = status
        self.msgid = detail if params is not None else None
        self.params = params or {}
        self.detail = detail.format(**self.params) if self.msgid else detail
        super().__init__(self.detail)

    def text(self, language: str) -> str:
        """The message for the user: the API's detail as it is, the panel's own translated."""
        return translate(language, self.msgid, **self.params) if self.msgid else self.detail


def path(*parts: str) -> str:
    """/api/v1/<parts>, each part percent-encoded (addresses keep their @)."""
    return "/api/v1/" + "/".join(quote(p, safe="@") for p in parts)


def _detail(resp: httpx.Response) -> str | None:
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
    return None


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
            error = {"error": type(exc).__name__}
            raise ApiError(502, "The API does not answer ({error}).", error) from exc
        if resp.status_code >= 400:
            detail = _detail(resp)
            if detail is None:
                status = {"status": str(resp.status_code)}
                raise ApiError(resp.status_code, "The API answered HTTP {status}.", status)
            raise ApiError(resp.status_code, detail)
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
