"""The API's error: an HTTP status and a message for the client ({"detail": "..."})."""

from __future__ import annotations


class ApiError(Exception):
    """A request that cannot be served as asked; `detail` tells the client why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def not_found(detail: str) -> ApiError:
    return ApiError(404, detail)


def forbidden(detail: str) -> ApiError:
    return ApiError(403, detail)


def conflict(detail: str) -> ApiError:
    return ApiError(409, detail)


def invalid(detail: str) -> ApiError:
    return ApiError(422, detail)


def listing(names: list[str], limit: int = 5) -> str:
    """`a, b, c and 4 more`: a short list of names for an error message."""
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown
