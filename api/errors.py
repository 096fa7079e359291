"""Errors as the API answers them: `{"reason": ..., "message": ...}` with a 4xx or 503.

The engine's refusals keep the engine's reason; the status says whose fault it is:
bad input 422, an order that is not (or no longer) the caller's 404, a risk limit or a
kill switch 403, the order rate 429, an engine or venue that does not answer, or an
engine shutting down, 503.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tickplane.api.schemas import ErrorPublic

__all__ = ["ERROR_RESPONSES", "ApiError", "install_handlers", "status_for_reason"]

# Reasons of the engine's risk checks (engine/risk.py CHECK_ORDER) and halts.
_FORBIDDEN = frozenset(
    {
        "kill_switch",
        "symbol_halted",
        "max_order_qty",
        "max_order_notional",
        "max_position",
        "price_band",
        "max_open_orders",
    }
)
_STATUS = {
    "unknown_order": 404,
    "order_rate": 429,
    "venue_unavailable": 503,
    "engine_unavailable": 503,
    "shutting_down": 503,  # the engine is stopping (a restart): it did nothing
}


#: The error answers of a route that needs a key and may reach the engine (OpenAPI).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "no key, or an unknown or revoked one"},
    403: {"model": ErrorPublic, "description": "refused by risk: a limit, a halt, a kill switch"},
    404: {"model": ErrorPublic, "description": "no such order (or symbol) of this account"},
    422: {"model": ErrorPublic, "description": "bad input (the reason says which)"},
    429: {"model": ErrorPublic, "description": "rate limited"},
    503: {"model": ErrorPublic, "description": "the engine did not answer"},
}


def status_for_reason(reason: str) -> int:
    """The HTTP status for an engine reason (anything not listed is bad input: 422)."""
    if reason in _FORBIDDEN:
        return 403
    return _STATUS.get(reason, 422)


class ApiError(Exception):
    """An error answer: status, reason and message (and headers, e.g. Retry-After)."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers

    @classmethod
    def from_engine(cls, reason: str, message: str = "") -> ApiError:
        return cls(status_for_reason(reason), reason, message or reason.replace("_", " "))


def _answer(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Any:
    return JSONResponse(body, status_code=status, headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts)


def install_handlers(app: FastAPI) -> None:
    """Answer every error in the API's shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Any:
        return _answer(exc.status, {"reason": exc.reason, "message": exc.message}, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Any:
        found = exc.errors()
        errors = []
        for err in found:
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            errors.append({"field": _where(tuple(err.get("loc", ()))), "message": msg})
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        ctype = request.headers.get("content-type", "")
        in_body = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in found)
        if in_body and "json" not in ctype:
            # curl -d without a header posts a form: say what to send, not what failed.
            message = f"send the body as JSON (Content-Type: application/json), not {ctype!r}"
        return _answer(422, {"reason": "invalid_request", "message": message, "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _answer(exc.status_code, {"reason": reason, "message": str(exc.detail)}, exc.headers)
