"""The HTTP collector: tracking endpoints of every common SDK, for servers and browsers.

Routes (``journeybus collect --port P``); the write key, where the route does not
say otherwise, is the Basic-auth user name, an ``X-Write-Key`` header or
``writeKey`` in the body. Gzip bodies are accepted, and JSON sent as
``text/plain`` (what browsers' beacons and analytics.js send, to avoid a preflight).

- Segment HTTP Tracking API: ``POST /v1/batch`` and ``/v1/{track,identify,page,
  screen,group,alias}``; analytics.js's short routes ``/v1/{t,i,p,s,g,a}`` and
  batch ``/v1/b``; historical import ``POST /v1/import`` (a batch; events keep
  their timestamps).
- RudderStack: its SDKs post to the Segment routes (their events are recorded with
  ``protocol`` rudderstack and keep ``rudderId`` and ``channel``); beacon
  ``POST /beacon/v1/batch?writeKey=K``; pixels ``GET /pixel/v1/{track,page}?
  writeKey=K&anonymousId=...`` (dotted parameters such as ``properties.sku``
  nest; answers a 1x1 GIF); webhook ``POST /v1/webhook?writeKey=K`` (the body
  becomes a ``webhook_source_event`` track call).
- Jitsu: ``POST /api/s/{type}`` (browser) and ``/api/s/s2s/{type}`` (server).
- Snowplow tracker protocol: ``POST /com.snowplowanalytics.snowplow/tp2``,
  pixels ``GET /i`` and ``/ice.png`` (a 1x1 GIF), click redirect ``GET /r/tp2?
  u=URL`` (302 to an http(s) URL). Trackers send no credentials: the app id
  (``aid``) names a write key in ``snowplow_app_ids``, or is itself one. An
  event of an unknown app id is dead-lettered and the rest of its batch
  accepted. The collector sets a first-party network user id cookie (``sp``),
  the anonymous id of events that carry no ``duid`` or ``uid``.
- Webhooks: ``POST /webhooks/social`` and ``POST /webhooks/messaging``, for
  listening and messaging providers, with events in the topic's JSON form (one
  object, a list, or ``{"events": [...]}``).

Browsers (CORS): each write key lists the page origins allowed to post with it
(``origins``, ``"*"`` for any); a preflight is answered for any origin some key
allows, and each request is checked against its own key (403
``origin_not_allowed``). Answers carry ``Access-Control-Allow-Credentials`` so
trackers may send the cookie.

Write keys map to a source (``web`` → clickstream, ``mobile`` → mobile app,
``social``, ``messaging``); they are configuration
(``CONNECTORS__HTTP_COLLECTOR__WRITE_KEYS='{"sha256:<hex>": "web"}'``; make the
digest with ``journeybus hash-key KEY``; a plain key is accepted too and
hashed on start). Only SHA-256 digests are kept and a presented key's digest
is compared with every configured one in constant time. An unknown key gets
401. Each key has a rate limit in events per second with a burst
(``rate_limit_events_per_s``, ``rate_limit_burst``); over it a request gets 429
with ``Retry-After`` (SDKs retry) and nothing of it is published.

Guarantees:

- **200 only after the broker acknowledged** every event of the request (and
  the dead letters of its invalid events). A timeout or broker error answers
  503, on which SDKs retry.
- **Retries are deduplicated**: an event whose id (``messageId`` / ``eid``) was
  already accepted, or is being accepted by a concurrent request, is not
  published again. The memory of accepted ids is bounded
  (``dedupe_max_events``, ``dedupe_ttl_s``); past it, or after a restart, a
  re-sent event reaches the topic twice with the same event id and downstream
  stages deduplicate it (deterministic touchpoint ids).
- **Invalid events are dead-lettered**, not refused: an event over 32 KB, of
  an unknown type or without ids goes to ``<topic>.dlq`` with the reason and the
  rest of its batch is accepted. The response lists them under ``rejected``.
  A malformed request (not JSON, no batch) is a 400; a body over 500 KB a 413.
  Errors are ``{"code": ..., "message": ...}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson
from aiohttp import web
from cachetools import TTLCache
from pydantic import field_validator

from connectors.base import Source
from connectors.publisher import Publisher
from connectors.record import SourceRecord
from connectors.registry import source
from connectors.settings import ConnectorSettings
from connectors.sources.body import BodyError, decode_body
from connectors.sources.ratelimit import TokenBuckets
from connectors.sources.tracking import (
    SEGMENT_TYPES,
    rudderstack_pixel_event,
    rudderstack_webhook_event,
    segment_protocol,
    segment_record,
    snowplow_get_payload,
    snowplow_record,
    snowplow_redirect_payload,
)
from connectors.web import json_error, serving, until
from streams.core import metrics
from streams.core.errors import InvalidRecord, internal_error, is_record_fault
from streams.core.topics import CLICKSTREAM, MESSAGING, MOBILE, SOCIAL

log = logging.getLogger(__name__)

SOURCE_TOPICS = {
    "web": CLICKSTREAM,
    "mobile": MOBILE,
    "social": SOCIAL,
    "messaging": MESSAGING,
}
TRACKING_SOURCES = frozenset({"web", "mobile"})
# analytics.js (analytics-next) posts each call to a one-letter route
SHORT_ROUTES = {call: call[0] for call in SEGMENT_TYPES}  # t, i, p, s, g, a
# The smallest transparent GIF: what a Snowplow pixel request expects back.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class CollectorSettings(ConnectorSettings):
    """``CONNECTORS__HTTP_COLLECTOR__*``. The default keys are for local use only."""

    host: str = "127.0.0.1"
    port: int = 8088
    write_keys: dict[str, str] = {
        "local-web": "web",
        "local-mobile": "mobile",
        "local-social": "social",
        "local-messaging": "messaging",
    }
    rate_limit_events_per_s: float = 10_000.0  # per write key; 0 disables the limit
    rate_limit_burst: int = 20_000
    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    dedupe_max_events: int = 1_000_000
    dedupe_ttl_s: float = 24 * 3600
    ack_timeout_s: float = 10.0
    # a connection that has not sent a request's headers within this long (of opening,
    # or of its previous response) is closed; a body not read within body_timeout_s: 408
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    # Browsers: the origins (scheme://host[:port]) whose pages may post with each write
    # key, keyed like write_keys (the key or its sha256: digest); "*" allows any origin.
    # A key without an entry takes no browser traffic (server-side SDKs send no Origin).
    origins: dict[str, list[str]] = {"local-web": ["*"], "local-mobile": ["*"]}
    # Snowplow trackers send an app id, no credentials: each app id names the write key
    # (as in write_keys) it posts with. An app id that is itself a write key works too.
    snowplow_app_ids: dict[str, str] = {}
    # The first-party network user id cookie, as Snowplow's collector sets it: the
    # anonymous id of a pixel or tracker event that carries no duid or uid.
    network_cookie: str = "sp"
    cookie_domain: str | None = None
    cookie_max_age_s: int = 365 * 24 * 3600
    cookie_secure: bool = False  # True behind HTTPS: SameSite=None; Secure (else Lax)

    @field_validator("write_keys", mode="before")
    @classmethod
    def _sources_only(cls, value: Any) -> Any:
        """Check what each key maps to without naming the key: keys are secrets, and a
        configuration error ends up in logs."""
        if not isinstance(value, dict):
            raise ValueError("write_keys must be a JSON object of key to source name")
        for n, name in enumerate(value.values(), 1):
            if name not in SOURCE_TOPICS:
                raise ValueError(
                    f"write key #{n} maps to {str(name)[:40]!r}, not a source "
                    f"({', '.join(SOURCE_TOPICS)})"
                )
        return value


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def hash_write_key(key: str) -> str:
    """The form of a write key to put in configuration: ``sha256:<hex digest>``."""
    return "sha256:" + _digest(key).hex()


def configured_digest(entry: str) -> bytes:
    """The digest of a configured key: ``sha256:<hex>`` as given, a plain key hashed."""
    if entry.startswith("sha256:"):
        try:
            digest = bytes.fromhex(entry[len("sha256:") :])
        except ValueError:
            digest = b""
        if len(digest) != hashlib.sha256().digest_size:
            raise ValueError("a hashed write key is sha256: and 64 hex digits")
        return digest
    return _digest(entry)


class Rejected(Exception):
    """A request refused with ``status`` and a ``{"code", "message"}`` JSON body."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _refuse(error: InvalidRecord, _event: Any) -> dict[str, Any]:
    """A record builder for an event already known to be invalid."""
    raise error


MAX_NESTING = 254  # orjson's limit: an event nested deeper cannot be written as JSON
MASKED = "[masked]"


def without_secrets(event: Any, secrets: tuple[str, ...]) -> Any:
    """``event`` with its top-level ``secrets`` fields masked (the same object when it
    has none, the common case)."""
    if not isinstance(event, dict) or not any(k in event for k in secrets):
        return event
    return {k: MASKED if k in secrets else v for k, v in event.items()}


def shallow(value: Any, secrets: tuple[str, ...], depth: int = 32) -> Any:
    """A copy of ``value`` cut ``depth`` levels down (deeper values become "…"), secrets
    masked: what a dead letter keeps of an event too deep to write whole."""
    if depth == 0:
        return "…" if isinstance(value, dict | list) else value
    if isinstance(value, dict):
        return {k: MASKED if k in secrets else shallow(v, (), depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [shallow(v, (), depth - 1) for v in value]
    return value


@source("http-collector", topic=CLICKSTREAM)
class HttpCollector(Source[CollectorSettings]):
    """Accepts tracking calls and webhooks over HTTP (see the module docstring)."""

    settings_class = CollectorSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys = [(configured_digest(k), v) for k, v in self.conf.write_keys.items()]
        known = {digest for digest, _ in self._keys}
        self._origins = {configured_digest(k): frozenset(v) for k, v in self.conf.origins.items()}
        self._app_ids = {a: configured_digest(k) for a, k in self.conf.snowplow_app_ids.items()}
        # an entry for a key that is not configured is a mistake to say at start (without
        # the key: it is a secret), not a browser or app that silently gets 401s; the
        # default origins are for the default (local) keys, dropped with them
        if "origins" in self.conf.model_fields_set and not set(self._origins) <= known:
            raise ValueError("origins names a write key that write_keys does not have")
        self._origins = {d: o for d, o in self._origins.items() if d in known}
        for app_id, digest in self._app_ids.items():
            if digest not in known:
                raise ValueError(f"snowplow_app_ids[{app_id!r}] is not a configured write key")
        self._any_origin = frozenset().union(*self._origins.values())
        self._limits = TokenBuckets(self.conf.rate_limit_events_per_s, self.conf.rate_limit_burst)
        self._accepted: TTLCache = TTLCache(self.conf.dedupe_max_events, self.conf.dedupe_ttl_s)
        self._inflight: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self.publisher: Publisher | None = None
        self.port: int | None = None
        self.started = threading.Event()

    def ready(self) -> tuple[bool, str]:
        if not self.started.is_set():
            return False, "starting"
        if self.publisher is not None and self.publisher.broker.up is False:
            return False, "broker unreachable: answering 503"
        return True, f"listening on {self.conf.host}:{self.port}"

    # -- serving -----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.conf.max_batch_bytes,
            middlewares=[self._cors, self._errors_as_json],
        )
        # Segment: the HTTP API, analytics.js's short routes and historical import
        for path in ("/v1/batch", "/v1/b", "/v1/import"):
            app.router.add_post(path, self._segment_batch)
        for call in SEGMENT_TYPES:
            for path in (f"/v1/{call}", f"/v1/{SHORT_ROUTES[call]}"):
                app.router.add_post(path, self._segment_call(call))
        # RudderStack: its SDKs use the routes above; beacon, pixel and webhook
        app.router.add_post("/beacon/v1/batch", self._segment_batch)
        for call in ("track", "page"):
            app.router.add_get(f"/pixel/v1/{call}", self._rudderstack_pixel(call))
        app.router.add_post("/v1/webhook", self._rudderstack_webhook)
        # Jitsu: browser and server-to-server event API
        for path in ("/api/s/{call}", "/api/s/s2s/{call}"):
            app.router.add_post(path, self._jitsu)
        # Snowplow: the tracker protocol, its pixels and the click redirect
        app.router.add_post("/com.snowplowanalytics.snowplow/tp2", self._snowplow_post)
        for path in ("/i", "/ice.png", "/com.snowplowanalytics.snowplow/i"):
            app.router.add_get(path, self._snowplow_get)
        app.router.add_get("/r/tp2", self._snowplow_redirect)
        app.router.add_post("/webhooks/social", self._webhook("social"))
        app.router.add_post("/webhooks/messaging", self._webhook("messaging"))
        app.router.add_get("/health", self._health)
        return app

    def run(self, stop: threading.Event) -> None:
        asyncio.run(self.serve(stop))

    async def serve(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set; in-flight requests finish first."""
        self.publisher = Publisher(self.name, self.conf, self.settings, self.bootstrap)
        self.publisher.start_polling()
        try:
            async with serving(
                self.app(),
                self.conf.host,
                self.conf.port,
                on_error=self._count_protocol_error,
                idle_timeout_s=self.conf.header_timeout_s,
                auto_decompress=False,
            ) as port:
                self.port = port
                log.info("collector listening on http://%s:%d", self.conf.host, port)
                self.started.set()
                await until(stop)
        finally:  # after the requests in flight got their answers
            self.publisher.close()

    @web.middleware
    async def _cors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """CORS for browsers: a preflight is answered here (allowed when some write key
        allows the page's origin; the request itself is then checked against its own
        key's origins), and every answer to an allowed origin says so, with credentials
        (the first-party cookie) and ``Retry-After`` readable by the page's script."""
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not origin or not self._origin_allowed(origin):
                metrics.COLLECTOR_REQUESTS.labels("preflight", "403").inc()
                return json_error(403, "origin_not_allowed", "no write key allows this origin")
            metrics.COLLECTOR_REQUESTS.labels("preflight", "204").inc()
            response: web.StreamResponse = web.Response(status=204)
            response.headers.update(
                {
                    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": request.headers.get(
                        "Access-Control-Request-Headers", ""
                    ),
                    "Access-Control-Max-Age": "86400",
                }
            )
        else:
            response = await handler(request)
        if origin and self._origin_allowed(origin):
            response.headers.update(
                {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Credentials": "true",
                    "Access-Control-Expose-Headers": "Retry-After",
                    "Vary": "Origin",
                }
            )
        return response

    def _origin_allowed(self, origin: str, digest: bytes | None = None) -> bool:
        """Whether pages of ``origin`` may post with the key of ``digest`` (any key when
        None)."""
        allowed = self._any_origin if digest is None else self._origins.get(digest, frozenset())
        return "*" in allowed or origin in allowed

    @web.middleware
    async def _errors_as_json(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except Rejected as exc:
            response = json_error(exc.status, exc.code, exc.message)
            response.headers.update(exc.headers)
        except web.HTTPException as exc:
            code = exc.reason.lower().replace(" ", "_")
            response = json_error(exc.status, code, exc.text or exc.reason)
        except Exception:
            # A bug, not the client's fault: answered and counted like any response, so
            # the collector-5xx alert sees it (SDKs retry a 500).
            log.exception("collector: %s %s failed", request.method, name)
            response = json_error(500, "internal_error", "the collector failed; retry")
        metrics.COLLECTOR_REQUESTS.labels(name, str(response.status)).inc()
        metrics.COLLECTOR_SECONDS.labels(name).observe(time.perf_counter() - started)
        return response

    @staticmethod
    def _count_protocol_error(status: int) -> None:
        """An error aiohttp answered before any route (``connectors.web``)."""
        metrics.COLLECTOR_REQUESTS.labels("protocol", str(status)).inc()

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    # -- request parsing ---------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            # as sent: aiohttp's decompression is off (connectors.sources.body says why)
            sent = await asyncio.wait_for(request.read(), self.conf.body_timeout_s)
            raw = decode_body(
                sent, request.headers.get("Content-Encoding", ""), self.conf.max_batch_bytes
            )
        except BodyError as exc:
            raise Rejected(exc.status, exc.code, str(exc)) from None
        except web.HTTPRequestEntityTooLarge:
            raise Rejected(
                413, "payload_too_large", f"a request may be {self.conf.max_batch_bytes} bytes"
            ) from None
        except TimeoutError:
            raise Rejected(
                408, "request_timeout", f"the body took over {self.conf.body_timeout_s:g} s"
            ) from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Rejected(400, "invalid_json", f"the body is not JSON: {exc}") from None
        return body

    def _match(self, presented: bytes) -> tuple[bytes, str | None]:
        """The configured digest equal to ``presented`` and its source (None if none).

        Every configured digest is compared (constant time, no early exit), so
        the answer's timing tells nothing about how much of a key was right.
        """
        match, source_name = b"", None
        for digest, name in self._keys:
            if hmac.compare_digest(presented, digest):
                match, source_name = digest, name
        return match, source_name

    def _source_of(
        self,
        request: web.Request,
        key: str | None,
        allowed: frozenset[str] | set[str],
        events: int = 1,
        digest: bytes | None = None,
    ) -> str:
        """The source a write key (or the key of ``digest``) is for, checked against the
        page's origin and charging ``events`` to the key's rate limit."""
        presented = digest if digest is not None else _digest(key if isinstance(key, str) else "")
        match, source_name = self._match(presented)
        if (digest is None and not key) or source_name is None or source_name not in allowed:
            raise Rejected(401, "invalid_write_key", "unknown or missing write key")
        origin = request.headers.get("Origin")
        if origin and not self._origin_allowed(origin, match):
            raise Rejected(403, "origin_not_allowed", "this write key does not allow this origin")
        wait = self._limits.take(match, events)
        if wait == math.inf:  # a retry would never fit: a 4xx SDKs do not retry
            raise Rejected(
                413,
                "over_rate_limit_burst",
                f"{events} events in one request; this write key allows "
                f"{self.conf.rate_limit_burst} at once: send smaller batches",
            )
        if wait:
            retry = str(max(1, math.ceil(wait)))
            raise Rejected(
                429,
                "rate_limited",
                f"over {self.conf.rate_limit_events_per_s:g} events/s for this write key "
                f"(burst {self.conf.rate_limit_burst}); retry after {retry} s",
                headers={"Retry-After": retry},
            )
        return source_name

    @staticmethod
    def _basic_user(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.split(":", 1)[0] or None

    @staticmethod
    def _client_ip(request: web.Request) -> str | None:
        forwarded = request.headers.get("X-Forwarded-For")
        return forwarded.split(",")[0].strip() if forwarded else request.remote

    def _event(
        self,
        raw: Any,
        build: Callable[[Any], dict[str, Any]],
        typed: bool = True,
        secrets: tuple[str, ...] = ("writeKey",),
    ) -> SourceRecord:
        """One event of a request as a record, or as an invalid one to dead-letter. The
        original kept for the dead letter has its ``secrets`` fields (the write key)
        masked."""
        try:
            original = orjson.dumps(without_secrets(raw, secrets))
        except orjson.JSONEncodeError:  # nested deeper than a JSON encoder goes
            error = InvalidRecord(
                "too_deep", f"the event is nested more than {MAX_NESTING} levels deep"
            )
            return SourceRecord.invalid(error, orjson.dumps(shallow(raw, secrets)))
        if len(original) > self.conf.max_event_bytes:
            error = InvalidRecord(
                "too_large", f"{len(original)} bytes; an event may be {self.conf.max_event_bytes}"
            )
            return SourceRecord.invalid(error, original[:4096])
        try:
            return SourceRecord(build(raw), original=original, typed=typed)
        except InvalidRecord as exc:
            return SourceRecord.invalid(exc, original)
        except Exception as exc:  # a bug this event exposes: its dead letter, not a 500
            if not is_record_fault(exc):
                raise
            log.exception("collector: building an event raised %s", type(exc).__name__)
            return SourceRecord.invalid(internal_error(exc, "the collector"), original)

    # -- Segment -----------------------------------------------------------------------
    async def _segment_batch(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
            raise Rejected(400, "invalid_request", 'the body needs a "batch" list')
        return await self._segment(request, body, body["batch"], None)

    def _segment_call(self, call: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            body = await self._body(request)
            if not isinstance(body, dict):
                raise Rejected(400, "invalid_request", "the body must be a JSON object")
            return await self._segment(request, {}, [body], call)

        return handle

    async def _segment(
        self,
        request: web.Request,
        batch: dict,
        events: list,
        call: str | None,
        protocol: str | None = None,
    ) -> web.Response:
        """Segment-shaped calls (Segment, RudderStack, Jitsu). The write key: Basic-auth
        user, ``X-Write-Key``, ``?writeKey=`` (RudderStack's beacon), or ``writeKey`` in
        the body (analytics.js's beacon and text/plain posts). ``protocol`` None: told
        from each event (``segment_protocol``)."""
        key = (
            self._basic_user(request)
            or request.headers.get("X-Write-Key")
            or request.query.get("writeKey")
            or batch.get("writeKey")
        )
        if key is None and events and isinstance(events[0], dict):
            key = events[0].get("writeKey")
        source_name = self._source_of(request, key, TRACKING_SOURCES, len(events))
        received, ip = int(time.time() * 1000), self._client_ip(request)
        records = [
            self._event(
                e,
                lambda e: segment_record(
                    e,
                    source_name,
                    received,
                    call_type=call,
                    batch=batch,
                    ip=ip,
                    protocol=protocol or segment_protocol(e),
                ),
            )
            for e in events
        ]
        return web.json_response(await self._accept(records, source_name))

    # -- RudderStack -------------------------------------------------------------------
    def _rudderstack_pixel(self, call: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            event = rudderstack_pixel_event(request.query_string, call)
            await self._segment(request, {}, [event], call, protocol="rudderstack")
            return web.Response(body=PIXEL, content_type="image/gif")

        return handle

    async def _rudderstack_webhook(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        anonymous_id = request.query.get("anonymousId")
        events = body if isinstance(body, list) else [body]
        calls = [
            rudderstack_webhook_event(e, anonymous_id) if isinstance(e, dict) else e for e in events
        ]
        return await self._segment(request, {}, calls, "track", protocol="rudderstack")

    # -- Jitsu -------------------------------------------------------------------------
    async def _jitsu(self, request: web.Request) -> web.Response:
        call = request.match_info["call"]
        body = await self._body(request)
        if not isinstance(body, dict):
            raise Rejected(400, "invalid_request", "the body must be a JSON object")
        if call not in SEGMENT_TYPES:
            # the type is the route's: an unknown one is this event's dead letter
            body = {**body, "type": call}
        return await self._segment(request, {}, [body], call, protocol="jitsu")

    # -- Snowplow ----------------------------------------------------------------------
    async def _snowplow_post(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise Rejected(400, "invalid_request", 'the body needs a "data" list')
        answer, nuid = await self._snowplow(request, data)
        return self._with_network_cookie(web.json_response(answer), nuid)

    async def _snowplow_get(self, request: web.Request) -> web.Response:
        _, nuid = await self._snowplow(request, [snowplow_get_payload(request.query_string)])
        return self._with_network_cookie(web.Response(body=PIXEL, content_type="image/gif"), nuid)

    async def _snowplow_redirect(self, request: web.Request) -> web.Response:
        try:
            payload, target = snowplow_redirect_payload(request.query_string)
        except InvalidRecord as exc:
            raise Rejected(400, exc.reason, str(exc)) from None
        _, nuid = await self._snowplow(request, [payload])
        return self._with_network_cookie(
            web.Response(status=302, headers={"Location": target}), nuid
        )

    def _with_network_cookie(self, response: web.Response, nuid: str) -> web.Response:
        """The response, setting (or renewing) the first-party network user id."""
        secure = self.conf.cookie_secure
        response.set_cookie(
            self.conf.network_cookie,
            nuid,
            max_age=self.conf.cookie_max_age_s,
            domain=self.conf.cookie_domain,
            path="/",
            secure=secure,
            httponly=True,
            samesite="None" if secure else "Lax",
        )
        return response

    def _snowplow_key(self, aid: Any) -> bytes:
        """The digest of the write key an app id posts with: its configured one, or the
        app id itself as a key."""
        aid = aid if isinstance(aid, str) else ""
        return self._app_ids.get(aid) or _digest(aid)

    async def _snowplow(self, request: web.Request, events: list) -> tuple[dict[str, Any], str]:
        """Each event under its app id's write key; an event whose app id is unknown is
        dead-lettered (``invalid_write_key``) and the rest accepted, unless none is
        known (401). Events without a network user id get the cookie's, a new one when
        the browser has none; the answer and that id."""
        received, ip = int(time.time() * 1000), self._client_ip(request)
        user_agent = request.headers.get("User-Agent")
        nuid = request.cookies.get(self.conf.network_cookie) or str(uuid.uuid4())
        by_source: dict[str, list[SourceRecord]] = {}
        unknown: list[SourceRecord] = []
        for event in events:
            if isinstance(event, dict) and not event.get("nuid"):
                event = {**event, "nuid": nuid}
            aid = event.get("aid") if isinstance(event, dict) else None
            try:
                digest = self._snowplow_key(aid)
                source_name = self._source_of(request, None, TRACKING_SOURCES, digest=digest)
            except Rejected as exc:
                if exc.status == 429:  # the key is over its rate limit: the SDK retries
                    raise
                error = InvalidRecord(exc.code, f"app id {str(aid)[:64]!r}: {exc.message}")
                # through _event, as every event: one too deep or too large to copy whole
                # is its dead letter too, not a 500
                unknown.append(self._event(event, partial(_refuse, error), secrets=()))
                continue
            by_source.setdefault(source_name, []).append(
                self._event(
                    event,
                    lambda e, s=source_name: snowplow_record(
                        e, s, received, ip=ip, user_agent=user_agent
                    ),
                    secrets=("aid",) if aid not in self._app_ids else (),
                )
            )
        if unknown and not by_source:
            raise Rejected(401, "invalid_write_key", "no event has a known app id")
        if unknown:
            by_source.setdefault("web", []).extend(unknown)
        answers = [await self._accept(records, s) for s, records in by_source.items()]
        return {
            "success": True,
            "accepted": sum(a["accepted"] for a in answers),
            "duplicates": sum(a["duplicates"] for a in answers),
            "rejected": [r for a in answers for r in a["rejected"]],
        }, nuid

    # -- webhooks ----------------------------------------------------------------------
    def _webhook(self, source_name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            body = await self._body(request)
            events = body.get("events", body) if isinstance(body, dict) else body
            events = events if isinstance(events, list) else [events]
            key = (
                self._basic_user(request)
                or request.headers.get("X-Write-Key")
                or (body.get("writeKey") if isinstance(body, dict) else None)
            )
            self._source_of(request, key, {source_name}, len(events))
            received = int(time.time() * 1000)

            def stamp(event: Any) -> dict[str, Any]:
                if not isinstance(event, dict):
                    raise InvalidRecord("schema_violation", "an event must be a JSON object")
                event = {k: v for k, v in event.items() if k != "writeKey"}
                event.setdefault("received_at", received)
                return event

            records = [self._event(e, stamp, typed=False) for e in events]
            return web.json_response(await self._accept(records, source_name))

        return handle

    # -- publishing --------------------------------------------------------------------
    async def _accept(self, records: list[SourceRecord], source_name: str) -> dict[str, Any]:
        """Publish new events and dead letters, wait for the broker; the response body."""
        assert self.publisher is not None
        if self.publisher.broker.up is False:  # SDKs retry a 503; waiting would time out
            raise Rejected(503, "broker_unavailable", "the broker is unreachable; retry")
        topic = SOURCE_TOPICS[source_name]
        loop = asyncio.get_running_loop()
        outgoing, mine, waits = [], [], []
        rejected: list[dict[str, Any]] = []
        duplicates = 0
        for index, record in enumerate(records):
            message = self.publisher.prepare(record, topic)
            if message.dead is not None:
                rejected.append(
                    {"index": index, "code": message.dead.reason, "message": str(message.dead)}
                )
                outgoing.append(message)
                continue
            ident = (source_name, message.event_id)
            if not message.event_id:  # never deduplicate by a missing id (prepare refuses it)
                outgoing.append(message)
                continue
            if ident in self._accepted:
                duplicates += 1
            elif ident in self._inflight:
                duplicates += 1
                waits.append(self._inflight[ident])
            else:
                future = loop.create_future()
                self._inflight[ident] = future
                mine.append((ident, future))
                outgoing.append(message)
        if duplicates:
            metrics.COLLECTOR_DUPLICATES.labels(source_name).inc(duplicates)
        ok = False
        try:
            delivery = await self.publisher.submit_async(outgoing, self.conf.ack_timeout_s)
            ok = delivery.ok
        except TimeoutError:
            log.warning("collector: the broker did not acknowledge in %ss", self.conf.ack_timeout_s)
        finally:
            for ident, future in mine:
                del self._inflight[ident]
                if ok:
                    self._accepted[ident] = True
                future.set_result(ok)
        if not ok or not all([await w for w in waits]):
            raise Rejected(503, "broker_unavailable", "the events were not acknowledged; retry")
        return {
            "success": True,
            "accepted": len(mine),
            "duplicates": duplicates,
            "rejected": rejected,
        }
