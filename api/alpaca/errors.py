"""Errors as Alpaca answers them: `{"code": <int>, "message": <str>}` with Alpaca's status.

alpaca-py parses every error body as JSON with a `code`, and silently retries a 429, so
business refusals are never 429 here. Every `/v2` and `/stream` route uses `AlpacaRoute`,
which turns the gateway's own errors (auth, validation, engine refusals) into this
shape, so the native API's handlers and shape stay untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from tickplane.api.errors import ApiError

__all__ = [
    "FORBIDDEN",
    "INVALID",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "UNPROCESSABLE",
    "AlpacaError",
    "AlpacaRoute",
    "from_api_error",
]

INVALID: Final = 40010001  # 422: bad input
UNAUTHORIZED: Final = 40110000  # 401: no valid key
FORBIDDEN: Final = 40310000  # 403: refused (buying power, risk, halts)
NOT_FOUND: Final = 40410000  # 404: no such order, position, asset
METHOD_NOT_ALLOWED: Final = 40510000  # 405: a known path, another method
UNPROCESSABLE: Final = 42210000  # 422: a valid request the order's state refuses
RATE_LIMITED: Final = 42910000  # 429: too many requests (the SDK retries these)
UNAVAILABLE: Final = 50310000  # 503: the engine does not answer


_CODES: Final = {400: INVALID, 401: UNAUTHORIZED, 404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}


class AlpacaError(Exception):
    """An error answer in Alpaca's shape."""

    def __init__(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    @classmethod
    def invalid(cls, message: str) -> AlpacaError:
        return cls(422, INVALID, message)

    @classmethod
    def not_found(cls, message: str) -> AlpacaError:
        return cls(404, NOT_FOUND, message)

    @classmethod
    def forbidden(cls, message: str) -> AlpacaError:
        return cls(403, FORBIDDEN, message)

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"code": self.code, "message": self.message},
            status_code=self.status,
            headers=self.headers,
        )


def from_api_error(exc: ApiError) -> AlpacaError:
    """The gateway's error (auth, rate limit, an engine refusal) in Alpaca's terms."""
    message = exc.message if exc.reason in exc.message else f"{exc.reason}: {exc.message}"
    if exc.status == 401:
        return AlpacaError(401, UNAUTHORIZED, exc.message)
    if exc.status == 404:
        return AlpacaError(404, NOT_FOUND, message)
    if exc.reason == "rate_limited":  # the key's request rate: a real rate limit
        return AlpacaError(429, RATE_LIMITED, exc.message, exc.headers)
    if exc.status in (403, 429):  # risk refusals, the engine's order rate: never 429
        return AlpacaError(403, FORBIDDEN, message)
    if exc.status >= 500:
        return AlpacaError(503, UNAVAILABLE, message, exc.headers)
    return AlpacaError(exc.status if 400 <= exc.status < 500 else 422, INVALID, message)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(
            str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")
        )
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"


class AlpacaRoute(APIRoute):
    """A route whose every error is answered in Alpaca's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except AlpacaError as exc:
                return exc.response()
            except ApiError as exc:
                return from_api_error(exc).response()
            except RequestValidationError as exc:
                return AlpacaError.invalid(_validation_message(exc)).response()
            except StarletteHTTPException as exc:  # e.g. a body that is not JSON
                status = exc.status_code if 400 <= exc.status_code < 500 else 422
                code = _CODES.get(status, status * 100_000)
                headers = dict(exc.headers) if exc.headers else None
                return AlpacaError(status, code, str(exc.detail), headers).response()

        return route
