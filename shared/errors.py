"""RFC 9457 problem+json: the domain errors services raise and the one place they become HTTP."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.i18n import Lang, message, problem_text, request_language

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
TYPE_BASE = "https://jiaozhi.dev/problems/"


class DomainError(Exception):
    """A use case refused: carries a stable problem type, a status and a human detail."""

    status = 400
    kind = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None, params: dict[str, Any] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail  # English, for logs and `lang=en`; `code` + `params` name a localised message
        self.code, self.params = code, params or {}
        self.extra = extra

    def localised(self, lang: Lang) -> tuple[str, str]:
        """(title, detail) in a language: the message `code` if given, else the kind's text (English: as raised)."""
        return localised(self.kind, lang, self.title, self.detail, self.code, {**self.extra, **self.params})


class NotFound(DomainError):
    status, kind, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, kind, title = 409, "conflict", "Conflict"


class Invalid(DomainError):
    status, kind, title = 422, "invalid", "Invalid input"


class InvalidParameter(Invalid):
    """A query parameter (a filter value, a date, an enum) that cannot be read; names it in `parameter`."""

    kind, title = "invalid-parameter", "Invalid query parameter"

    def __init__(self, parameter: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, parameter=parameter, **extra)


class InvalidCursor(InvalidParameter):
    """A `cursor` that this list did not hand out (tampered with, or from another list)."""

    kind, title = "invalid-cursor", "Invalid cursor"

    def __init__(self, detail: str = "malformed cursor: pass back a next_cursor this list returned") -> None:
        super().__init__("cursor", detail)


class LimitOutOfRange(InvalidParameter):
    """A page size outside the list's bounds."""

    kind, title = "limit-out-of-range", "Limit out of range"

    def __init__(self, detail: str, *, maximum: int) -> None:
        super().__init__("limit", detail, maximum=maximum)


class InvalidBatch(Invalid):
    """A batch body that is not a batch at all (not an array or NDJSON, empty, or over the item cap)."""

    kind, title = "invalid-batch", "Invalid batch"


class Forbidden(DomainError):
    status, kind, title = 403, "forbidden", "Forbidden"


class Unauthorized(DomainError):
    status, kind, title = 401, "unauthorized", "Not authenticated"


def localised(kind: str, lang: Lang, title: str, detail: str, code: str | None = None,
              params: dict[str, Any] | None = None) -> tuple[str, str]:
    """A problem's title and detail in a language (the `type` never changes)."""
    title_l, generic = problem_text(kind, lang)
    if code:
        return title_l or title, message(code, lang, **(params or {}))
    if lang == "en" or not generic:
        return title_l or title, detail
    try:
        return title_l or title, generic.format(**(params or {}))
    except (KeyError, IndexError, ValueError):
        return title_l or title, generic


def reason(error: dict[str, Any], lang: Lang) -> str:
    """One validation error's reason in a language, from pydantic's error type and context."""
    ctx = {k: (", ".join(map(str, v)) if isinstance(v, list | tuple) else v)
           for k, v in (error.get("ctx") or {}).items()}
    ctx.setdefault("msg", error.get("msg", ""))
    key = f"reason.{error.get('type', 'other')}"
    text = message(key, lang, **ctx)
    return message("reason.other", lang) if text == key else text


def field_name(loc: list[Any]) -> str:
    """The field an error is about: its location without the leading body/query/path."""
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("body", "query", "path", "header") else list(map(str, loc))
    return ".".join(parts) or "?"


def problem(status: int, kind: str, title: str, detail: str, *, instance: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """A problem+json response."""
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def query_problem(errors: list[dict[str, Any]]) -> InvalidParameter | None:
    """The one problem for errors that are all in query or path parameters (the first one is named);
    None when the body is among them (a schema mismatch, reported as `validation`)."""
    if not errors or any(not e["loc"] or e["loc"][0] not in ("query", "path") for e in errors):
        return None
    first = errors[0]
    name = str(first["loc"][1]) if len(first["loc"]) > 1 else "?"
    if name == "limit":
        return LimitOutOfRange(f"limit: {first['msg']}", maximum=MAX_PAGE)
    if name == "cursor":
        return InvalidCursor()
    return InvalidParameter(name, f"{name}: {first['msg']}")


#: the largest page any list hands out (shared.pagination keeps to it)
MAX_PAGE = 500

_HTTP_KINDS = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
               409: "conflict", 413: "payload-too-large", 415: "unsupported-media-type", 429: "too-many-requests"}


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error to problem+json; an unexpected one is a 500 without a stack trace."""

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        title, detail = exc.localised(request_language(request))
        return problem(exc.status, exc.kind, title, detail, instance=request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        lang = request_language(request)
        raw = list(exc.errors())
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in raw]
        named = message("validation.field", lang, field=field_name(errors[0]["loc"]), reason=reason(raw[0], lang)) \
            if raw else None
        if query := query_problem(errors):
            title, _ = query.localised(lang)
            detail = query.detail if lang == "en" or not named else named
            return problem(query.status, query.kind, title, detail, instance=request.url.path,
                           errors=errors, **query.extra)
        title, generic = localised("validation", lang, "Invalid input", "the request does not match the schema")
        return problem(422, "validation", title, f"{generic}: {named}" if named and lang == "en" else named or generic,
                       instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_KINDS.get(exc.status_code, "http-error")
        title, detail = localised(kind, request_language(request), kind.replace("-", " ").capitalize(),
                                  str(exc.detail))
        return problem(exc.status_code, kind, title, detail, instance=request.url.path,
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        title, detail = localised("internal", request_language(request), "Internal error",
                                  "an unexpected error occurred; it has been logged")
        return problem(500, "internal", title, detail, instance=request.url.path)
