"""The alert API's error shape: ``ApiError`` and the handlers that render every refusal.

Every error is JSON ``{"error": code, "detail": message}``; a 401 also carries
``WWW-Authenticate: Bearer``. Domain errors (:class:`~.tokens.AuthError`,
:class:`~.book.AckError`, :class:`~.filters.FilterError`, :class:`~.cursor.CursorError`),
request validation failures and Starlette's own refusals all keep that shape.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stream.subscriptions.book import AckError
from stream.subscriptions.cursor import CursorError
from stream.subscriptions.filters import FilterError
from stream.subscriptions.tokens import AuthError


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def as_api_error(exc: Exception) -> ApiError:
    if isinstance(exc, AuthError | AckError | ApiError):
        return ApiError(exc.status, exc.code, exc.detail)
    if isinstance(exc, FilterError):
        return ApiError(400, exc.code, exc.detail)
    if isinstance(exc, CursorError):
        return ApiError(400, "bad_cursor", str(exc))
    raise exc


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    err = as_api_error(exc)
    return error_response(err.status, err.code, err.detail)


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return error_response(400, "bad_request", f"{where}: {first['msg']}")


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    # Starlette's own refusals (an unparseable body, an unknown route) keep the
    # API's error shape: a machine-readable code beside the detail.
    codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
    return error_response(
        exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every refusal into the API's error JSON."""
    for error_type in (ApiError, AuthError, AckError, FilterError, CursorError):
        app.exception_handler(error_type)(_api_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(StarletteHTTPException)(_http)
