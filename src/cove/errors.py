"""One error shape for every HTTP failure: ``{"error": {"code": ..., "message": ...}}``.

Domain code raises :class:`ApiError`; the handlers installed by :func:`install_error_handlers` turn it,
FastAPI's validation errors and unknown routes into that shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """What every non-2xx response carries; some codes add fields (``missing_devices``, ``retry_after``...)."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error shape for the given statuses."""
    return {status: {"model": ErrorBody} for status in statuses}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
}


def _document_validation_as_400(app: FastAPI) -> None:
    """FastAPI documents 422 for schema errors; Cove answers them with 400 in the shared error shape."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None and "400" not in responses:
                    responses["400"] = {
                        "description": "Bad Request",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    }
        schemas = schema.get("components", {}).get("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_HTTP_METHODS = {"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}


def http_error_headers(request: Request, exc: StarletteHTTPException) -> dict[str, str] | None:
    """The exception's headers, and on a 405 an ``Allow`` naming every method the path takes (RFC 9110, 15.5.6):
    Starlette's own names only those of the first route whose path matched, when it names any."""
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Asked of the router, method by method: it knows what a path parameter's convertor takes
        # (``/v1/devices/list`` is no ``{device_id:int}``, ``/v1/groups/join`` no group id).
        methods = {m for m in _HTTP_METHODS if _routed(request, m)}
        if "GET" in methods:
            methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
        if methods:
            headers["Allow"] = ", ".join(sorted(methods))
    return headers or None


def _routed(request: Request, method: str) -> bool:
    scope = {**request.scope, "method": method}
    return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)


def install_error_handlers(app: FastAPI) -> None:
    _document_validation_as_400(app)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append({"field": where, "problem": err.get("msg", "invalid")})
        message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems) or "invalid request"
        body = {"error": {"code": "invalid_request", "message": message, "fields": problems}}
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        body = {"error": {"code": code, "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code, headers=http_error_headers(request, exc))
