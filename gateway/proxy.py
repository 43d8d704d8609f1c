"""The hot path: pure ASGI code that authenticates, limits, scopes and forwards public requests.

Forwarded requests skip FastAPI altogether (its middleware stack, telemetry hook, routing,
dependency injection and Request objects): on this
2-core machine the gateway process is CPU-bound, and every microsecond spent per request is
throughput lost (see bench/gateway.py). The gateway's own routes (token, me, the OpenAPI
document, audit) fall through to FastAPI untouched.

Per request, in order: route → bearer token (verified once, then cached until it expires) →
rate limit (429) → role at the door (403) → page size (422) → jurisdiction of the units named in
the path or filters (404) → body size (413) → forward with a one-minute internal token in place of
the caller's → the upstream's answer, or a 502/503/504 problem. Writes are audited.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from gateway.audit_log import WRITE_METHODS, AuditLog
from gateway.breaker import Breakers
from gateway.config import GatewaySettings
from gateway.forward import DROP_REQUEST, KEEP_RESPONSE, stream_timeout, upstream_failure
from gateway.idempotency import IdempotencyStore, KeyProblem, idempotent
from gateway.limits import RateLimiter, retry_after
from gateway.policy import door_allows, named_units, within_jurisdiction
from gateway.routes import UPLOADS, Router
from gateway.units import UnitTree
from shared.auth import Identity, bearer, decode_claims, identity_of, issue_internal_token
from shared.errors import PROBLEM, TYPE_BASE, DomainError, Unauthorized, localised
from shared.i18n import Lang, scope_language
from shared.observability import current_request_id
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

#: the gateway's own paths under /api/v1 (served by FastAPI, never forwarded)
OWN_PATHS = frozenset({"/api/v1/auth/token", "/api/v1/me", "/api/v1/openapi.json", "/api/v1/asyncapi.json",
                       "/api/v1/audit"})
WWW_AUTHENTICATE = 'Bearer realm="jiaozhi"'


class Refused(Exception):
    """A request stopped at the gateway, with its problem."""

    def __init__(self, status: int, kind: str, title: str, detail: str, headers: dict[str, str] | None = None,
                 cause: str = "", **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail, self.headers = status, kind, title, detail, headers or {}
        self.cause = cause  # for the log line of a 5xx: what went wrong, never shown to the caller
        self.extra = extra  # more problem members (e.g. `parameter`)


@dataclass
class TokenCache:
    """Verified access tokens → identity, and one internal token per identity, re-minted before it expires.

    HMAC verification and signing cost tens of microseconds each; a caller sends the same token for
    an hour, so both are done once. A token stays accepted until its own expiry, as with any JWT.
    """

    settings: GatewaySettings
    max_entries: int = 50_000
    verified: dict[str, tuple[Identity, float]] = field(default_factory=dict)
    internal: dict[Identity, tuple[str, float]] = field(default_factory=dict)

    def identity(self, token: str) -> Identity:
        """The identity of a valid access token; Unauthorized otherwise."""
        now = time.time()
        hit = self.verified.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        claims = decode_claims(self.settings, token)
        identity = identity_of(claims)
        if len(self.verified) >= self.max_entries:
            self.verified.clear()
        self.verified[token] = (identity, float(claims["exp"]))
        return identity

    def internal_token(self, identity: Identity) -> str:
        """A service-facing token for the identity with at least 20 s left."""
        now = time.time()
        hit = self.internal.get(identity)
        if hit is not None and hit[1] - now > 20:
            return hit[0]
        token = issue_internal_token(self.settings, identity)
        if len(self.internal) >= self.max_entries:
            self.internal.clear()
        self.internal[identity] = (token, now + 60)
        return token


@dataclass
class GatewayCore:
    """What the hot path needs; the long-lived parts are set in the app's lifespan."""

    settings: GatewaySettings
    router: Router
    tokens: TokenCache
    limiter: RateLimiter
    client: aiohttp.ClientSession | None = None
    audit: AuditLog | None = None
    units: UnitTree | None = None
    telemetry: Telemetry = field(default_factory=lambda: Telemetry("gateway"))
    breakers: Breakers | None = None
    idempotency: IdempotencyStore | None = None


def problem_body(status: int, kind: str, title: str, detail: str, instance: str, **extra: Any) -> bytes:
    """The bytes of a problem+json document."""
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, "instance": instance}
    body.update({k: v for k, v in extra.items() if v is not None})
    return json.dumps(body, ensure_ascii=False).encode()


async def send_problem(send: Send, status: int, kind: str, title: str, detail: str, instance: str,
                       headers: dict[str, str] | None = None, *, lang: Lang = "en", **extra: Any) -> None:
    """Answer with a problem+json document, its title and detail in the caller's language."""
    title, detail = localised(kind, lang, title, detail)
    body = problem_body(status, kind, title, detail, instance, **extra)
    raw = [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _RouteLabel:
    """What the metrics middleware reads as the route of a forwarded request."""

    def __init__(self, path: str) -> None:
        self.path = path


class Proxy:
    """Forwards one routed public request (see the module docstring for the order of checks)."""

    def __init__(self, core: GatewayCore) -> None:
        self.core = core
        self._labels: dict[str, _RouteLabel] = {}

    def upstream(self, scope: Scope) -> str | None:
        """The upstream of a request the proxy forwards, or None if it is the gateway's own business."""
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/v1/") or path in OWN_PATHS:
            return None
        return self.core.router.upstream(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        upstream = self.core.router.upstream(path)
        assert upstream is not None, "call only for paths upstream() routes"
        scope["route"] = self._labels.setdefault(upstream, _RouteLabel(f"proxy {upstream}"))
        identity: Identity | None = None
        status, started = 500, False

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            identity = self._authenticate(scope)
            await self._check(scope, identity, path)
            body = await self._read_body(scope, receive)
            if self.core.idempotency is not None and scope["method"] in WRITE_METHODS:
                status = await idempotent(self.core.idempotency, scope, identity, body, tracked_send,
                                          lambda s: self._forward(scope, receive, s, upstream, identity, body))
            else:
                status = await self._forward(scope, receive, tracked_send, upstream, identity, body)
        except Refused as exc:
            status = exc.status
            if exc.status >= 500:  # every 5xx the gateway answers itself is logged with its cause
                log.warning("%d %s for %s %s: %s", exc.status, exc.kind, scope["method"], path, exc.cause or exc.detail,
                            extra={"upstream": upstream, "status": exc.status, "cause": exc.cause or exc.kind})
            await send_problem(send, exc.status, exc.kind, exc.title, exc.detail, path, exc.headers,
                               lang=scope_language(scope), **exc.extra)
        except KeyProblem as exc:
            status = exc.status
            await send_problem(send, exc.status, exc.kind, exc.title, exc.detail, path,
                               {"Retry-After": "1"} if exc.status == 409 else None, lang=scope_language(scope))
        except Exception:
            log.exception("unhandled error forwarding %s %s", scope["method"], path)
            if not started:
                await send_problem(send, 500, "internal", "Internal error",
                                   "an unexpected error occurred; it has been logged", path, lang=scope_language(scope))
        finally:
            if scope["method"] in WRITE_METHODS and self.core.audit is not None:
                client = scope.get("client")
                self.core.audit.record(username=identity.username if identity else None,
                                       role=identity.role if identity else None, method=scope["method"], path=path,
                                       status=status, request_id=current_request_id(),
                                       client=client[0] if client else None)

    def _authenticate(self, scope: Scope) -> Identity:
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            return self.core.tokens.identity(bearer(authorization))
        except Unauthorized as exc:
            raise Refused(401, "unauthorized", "Not authenticated", exc.detail,
                          {"WWW-Authenticate": WWW_AUTHENTICATE + ', error="invalid_token"'}) from exc
        except DomainError as exc:
            raise Refused(exc.status, exc.kind, exc.title, exc.detail) from exc

    async def _check(self, scope: Scope, identity: Identity, path: str) -> None:
        core = self.core
        if (wait := core.limiter.take(identity.username)) > 0:
            raise Refused(429, "too-many-requests", "Too many requests",
                          f"{identity.username} is over {core.limiter.rate:g} requests/s; slow down",
                          {"Retry-After": retry_after(wait)})
        method = scope["method"]
        if not door_allows(identity, method, path):
            raise Refused(403, "forbidden", "Forbidden", f"role {identity.role} may not {method} {path}")
        query = scope.get("query_string", b"").decode("latin-1")
        if "limit=" in query:
            self._check_page_size(query)
        if identity.role in ("station", "squadron"):
            names = named_units(path, query)
            if names:
                parents = await core.units.get() if core.units is not None and identity.role == "squadron" else None
                if not within_jurisdiction(identity, names, parents):
                    # 404, not 403: whether a unit exists outside the caller's jurisdiction is not theirs to know
                    raise Refused(404, "not-found", "Not found", f"nothing at {path} in your jurisdiction")

    def _check_page_size(self, query: str) -> None:
        from urllib.parse import parse_qsl

        for key, value in parse_qsl(query, keep_blank_values=True):
            if key != "limit":
                continue
            maximum = self.core.settings.max_page_size
            if not value.isdigit() or not 1 <= int(value) <= maximum:
                raise Refused(422, "limit-out-of-range", "Limit out of range",
                              f"limit must be an integer from 1 to {maximum}", parameter="limit", maximum=maximum)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        maximum = self.core.settings.max_body_bytes
        if scope["method"] == "POST" and UPLOADS.match(scope["path"]):
            maximum = self.core.settings.max_upload_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > maximum:
                raise self._too_large(maximum)  # refuse before reading it
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > maximum:
                raise self._too_large(maximum)  # a chunked body without a length
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    @staticmethod
    def _too_large(maximum: int) -> Refused:
        return Refused(413, "payload-too-large", "Payload too large", f"bodies are limited to {maximum} bytes")

    async def _forward(self, scope: Scope, receive: Receive, send: Send, upstream: str, identity: Identity,
                       body: bytes) -> int:
        core = self.core
        assert core.client is not None, "the gateway's lifespan has not started"
        breaker = core.breakers.of(upstream) if core.breakers is not None else None
        if breaker is not None and breaker.is_open:
            raise Refused(503, "upstream-unavailable", "Upstream unavailable",
                          f"the {breaker.name} service is unavailable; try again shortly",
                          {"Retry-After": breaker.retry_after()}, cause=f"circuit open ({breaker.cause})")
        target = upstream + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = {}
        streaming = False
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")
            if name not in DROP_REQUEST:
                headers[name] = raw_value.decode("latin-1")
                if name == "accept" and b"text/event-stream" in raw_value:
                    streaming = True
        headers["authorization"] = "Bearer " + core.tokens.internal_token(identity)
        if (rid := current_request_id()) is not None:
            headers["x-request-id"] = rid
        if (client := scope.get("client")) is not None:
            headers["x-forwarded-for"] = client[0]
        streaming = streaming or scope["path"].endswith("/stream")
        # a stream stays open: no overall limit, but a silent one (no event, no heartbeat) is cut
        options: dict[str, Any] = {"timeout": stream_timeout(core.settings.upstream_connect_timeout_s,
                                                             3 * core.settings.upstream_timeout_s)} \
            if streaming else {}
        # a call waiting on a service whose breaker opens meanwhile is cut short with a 503 (Breaker.trip)
        waiting = asyncio.current_task() if breaker is not None and not streaming else None
        if waiting is not None:
            breaker.waiting.add(waiting)  # type: ignore[union-attr]
        try:
            async with core.client.request(scope["method"], URL(target, encoded=True), data=body or None,
                                           headers=headers, allow_redirects=False, **options) as answer:
                kept = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()
                        if k.lower() in KEEP_RESPONSE]
                if answer.content_type == "text/event-stream":
                    await self._stream(answer, kept, receive, send)
                    return answer.status
                content = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, kind, title, detail = upstream_failure(exc)
            cause = f"upstream {upstream}: {type(exc).__name__}: {exc or 'no detail'}"
            if breaker is not None and status in (503, 504):
                breaker.failed(type(exc).__name__)
            raise Refused(status, kind, title, detail, {"Retry-After": "1"} if status == 503 else None,
                          cause=cause) from exc
        except asyncio.CancelledError:
            if waiting is None or not breaker.was_cut(waiting):  # type: ignore[union-attr]
                raise
            raise Refused(503, "upstream-unavailable", "Upstream unavailable",
                          f"the {breaker.name} service stopped answering; try again shortly",  # type: ignore[union-attr]
                          {"Retry-After": breaker.retry_after()},  # type: ignore[union-attr]
                          cause=f"circuit opened while waiting ({breaker.cause})") from None  # type: ignore[union-attr]
        finally:
            if waiting is not None:
                breaker.waiting.discard(waiting)  # type: ignore[union-attr]
        if waiting is not None and waiting in breaker.cut:  # type: ignore[union-attr]
            await breaker.absorb_cut(waiting)  # type: ignore[union-attr] - cut just as the answer came
        if breaker is not None:
            breaker.succeeded()
        if answer.status >= 500:
            log.warning("upstream %s answered %d to %s %s", upstream, answer.status, scope["method"], scope["path"],
                        extra={"upstream": upstream, "status": answer.status, "cause": "upstream answer"})
        kept.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": kept})
        await send({"type": "http.response.body", "body": content})
        return answer.status

    @staticmethod
    async def _stream(answer: aiohttp.ClientResponse, headers: list[tuple[bytes, bytes]], receive: Receive,
                      send: Send) -> None:
        """Relay a server-sent event stream until either side goes away."""
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": headers + [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})

        async def relay() -> None:
            async for chunk in answer.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def caller_left() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        tasks = [asyncio.create_task(relay()), asyncio.create_task(caller_left())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
