"""The node's REST API (aiohttp), as documented in node/openapi.yaml.

Handlers are thin: they validate the request strictly, call the node service (the runtime,
which owns NodeCore, the store and the mempool) synchronously on the event loop, and render
JSON with hashes in hex and canonical encodings in base64. Every error, including aiohttp's
own (404 for unknown routes, 405, 413), leaves as ``{"error": {"code", "message"}}``.
Nothing a client sends reaches NodeCore unless it is a well-formed request; a transaction is
only admitted by NodeCore itself (decode, signature, application check, mempool bounds).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from ledger import codec, merkle
from ledger.application import QueryError
from ledger.types import Block, CommitCertificate, Receipt, Transaction
from node import explorer
from node.logging import get_logger
from node.storage import StoreError

OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")
MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack")
MAX_PATH_CHARS = 512
EVENTS_QUEUE_MAX_MESSAGES = 256

_HASH_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})*$")
_QUERY_SEGMENT = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = get_logger("huzhu.api")


# --- the service the API talks to -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """What became of a submitted transaction.

    ``category``: "accepted" (202), "malformed" or "bad_signature" (400), "duplicate" (409),
    "rejected" by the application (422), "full" mempool (429).
    """

    category: str
    code: str
    message: str = ""
    tx_id: bytes | None = None


class NodeService(Protocol):
    chain_id: str
    store: Any

    def genesis_document(self) -> dict: ...

    def submit_tx(self, raw: bytes) -> SubmitOutcome: ...

    async def wait_for_commit(self, tx_id: bytes, timeout_s: float) -> tuple[int, int] | None:
        """(height, index) once ``tx_id`` is committed, None after ``timeout_s``."""
        ...

    def mempool_contains(self, tx_id: bytes) -> bool: ...

    def query(self, path: str, prove: bool) -> tuple[Any, Any]: ...

    def committed_height(self) -> int: ...

    def status(self) -> dict: ...

    def readiness(self) -> tuple[bool, str, dict]: ...

    def report_store_corrupt(self) -> None:
        """Damaged bytes were found: count them and stop answering ready."""
        ...

    def subscribe(self, queue: asyncio.Queue) -> Callable[[], None]:
        """Deliver events to ``queue``; the returned callable unsubscribes."""
        ...

    def metrics_text(self) -> bytes: ...


# --- errors ---------------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


_AIOHTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                  413: "body_too_large", 415: "unsupported_media_type"}


@web.middleware
async def error_middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _AIOHTTP_CODES.get(exc.status, f"http_{exc.status}")
        message = exc.reason if exc.status != 413 else exc.text or "request body too large"
        return error_response(exc.status, code, message)
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug here must not take the node down; it is logged and reported
        log.exception("api_internal_error", path=request.path)
        return error_response(500, "internal", "internal error")


# --- JSON rendering -------------------------------------------------------------------------

def to_json(value: Any) -> Any:
    """A plain (codec) value as JSON: bytes become lowercase hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def header_json(block: Block) -> dict:
    return to_json(block.header.to_plain())


def tx_json(tx: Transaction) -> dict:
    plain = to_json(tx.to_plain())
    plain["tx_id"] = tx.tx_id.hex()
    return plain


def receipt_json(receipt: Receipt) -> dict:
    return {"tx_id": receipt.tx_id.hex(), "code": receipt.code, "ok": receipt.ok,
            "result": to_json(receipt.result)}


def certificate_json(certificate: CommitCertificate | None) -> dict | None:
    if certificate is None:
        return None
    return {"height": certificate.height, "view": certificate.view,
            "block_hash": certificate.block_hash.hex(),
            "signers": [replica for replica, _ in certificate.signatures],
            "signatures": [{"replica": replica, "signature": signature.hex()}
                           for replica, signature in certificate.signatures]}


# --- request parsing ------------------------------------------------------------------------

def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ApiError(400, "duplicate_key", "a JSON object repeats a key")
    return dict(pairs)


def _query_params(request: web.Request, allowed: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """The query parameters, each at most once and with one of its allowed values."""
    params: dict[str, str] = {}
    for name, value in request.query.items():
        if name not in allowed:
            raise ApiError(400, "unknown_parameter", f"unknown query parameter {name!r}")
        if name in params:
            raise ApiError(400, "duplicate_parameter", f"query parameter {name!r} repeated")
        if value not in allowed[name]:
            raise ApiError(400, "bad_parameter",
                           f"{name} must be one of {', '.join(allowed[name])}")
        params[name] = value
    return params


_BOOL = ("true", "false")


def decode_tx_text(text: str) -> bytes:
    """The bytes of a transaction given as hex or as base64.

    A canonical transaction encoding starts with 0x86 (a map of six fields), so its base64
    starts with "h", never a hex digit: the two forms cannot be confused.
    """
    text = text.strip()
    if not text:
        raise ApiError(400, "bad_encoding", "tx is empty")
    if _HEX.match(text):
        return bytes.fromhex(text)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_encoding", "tx is neither hex nor base64") from None


async def read_tx_body(request: web.Request, max_body_bytes: int) -> bytes:
    length = request.content_length
    if length is not None and length > max_body_bytes:
        raise ApiError(413, "body_too_large", f"body of {length} bytes exceeds {max_body_bytes}")
    body = await request.content.read(max_body_bytes + 1)
    if len(body) > max_body_bytes:
        raise ApiError(413, "body_too_large", f"body exceeds {max_body_bytes} bytes")
    content_type = request.content_type
    if content_type in MSGPACK_TYPES:
        if not body:
            raise ApiError(400, "bad_encoding", "empty msgpack body")
        return body
    if content_type not in ("application/json", "application/octet-stream") and body[:1] != b"{":
        raise ApiError(415, "unsupported_media_type",
                       "send application/json or application/msgpack")
    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
    except ApiError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "bad_json", "body is not valid JSON") from None
    if not isinstance(document, dict):
        raise ApiError(400, "wrong_type", "body must be a JSON object")
    unknown = sorted(set(document) - {"tx"})
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field(s): {', '.join(unknown)}")
    if "tx" not in document:
        raise ApiError(400, "missing_field", "field 'tx' is required")
    if not isinstance(document["tx"], str):
        raise ApiError(400, "wrong_type", "tx must be a string (hex or base64)")
    return decode_tx_text(document["tx"])


def parse_hash(text: str, code: str) -> bytes:
    if not _HASH_HEX.match(text):
        raise ApiError(400, code, "expected 64 hex digits")
    return bytes.fromhex(text)


# --- the application ------------------------------------------------------------------------

SUBMIT_STATUS = {"accepted": 202, "malformed": 400, "bad_signature": 400, "duplicate": 409,
                 "rejected": 422, "full": 429}


class Api:
    def __init__(self, service: NodeService, max_body_bytes: int,
                 wait_commit_timeout_ms: int, max_waiters: int) -> None:
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.wait_commit_timeout_s = wait_commit_timeout_ms / 1000
        self.max_waiters = max_waiters
        self.waiting = 0
        self._openapi = OPENAPI_PATH.read_bytes()

    @web.middleware
    async def store_corrupt_middleware(self, request: web.Request,
                                       handler: Callable) -> web.StreamResponse:
        try:
            return await handler(request)
        except StoreError as exc:
            if exc.code != "corrupt":
                raise
            # Damaged bytes are reported (log, metric, /readyz false), never passed on.
            log.error("store_corrupt", path=request.path, message=exc.message)
            self.service.report_store_corrupt()
            raise ApiError(500, "store_corrupt",
                           "the node's store is damaged at this record") from None

    def application(self) -> web.Application:
        # aiohttp's own limit is a backstop above ours, so our handler answers first.
        app = web.Application(middlewares=[error_middleware, self.store_corrupt_middleware],
                              client_max_size=self.max_body_bytes + 1024)
        route = app.router
        route.add_post("/txs", self.post_tx)
        route.add_get("/txs/{tx_id}", self.get_tx)
        route.add_get("/blocks/{height}", self.get_block)
        route.add_get("/state/{path:.+}", self.get_state)
        for prefix, kind in (("members", "member"), ("claims", "claim"),
                             ("settlements", "settlement"), ("jury", "jury")):
            route.add_get(f"/{prefix}/{{key}}", self._domain_view(kind))
        route.add_get("/status", self.get_status)
        route.add_get("/genesis", self.get_genesis)
        route.add_get("/healthz", self.healthz)
        route.add_get("/readyz", self.readyz)
        route.add_get("/metrics", self.metrics)
        route.add_get("/events", self.events)
        route.add_get("/openapi.yaml", self.openapi)
        explorer.add_routes(route)  # the chain explorer page at /
        return app

    # --- transactions ---------------------------------------------------------------------

    async def post_tx(self, request: web.Request) -> web.Response:
        params = _query_params(request, {"wait": ("commit",)})
        raw = await read_tx_body(request, self.max_body_bytes)
        outcome = self.service.submit_tx(raw)
        status = SUBMIT_STATUS.get(outcome.category)
        assert status is not None, f"unknown submit outcome {outcome.category}"
        if status != 202:
            raise ApiError(status, outcome.code, outcome.message or outcome.code)
        assert outcome.tx_id is not None
        tx_id = outcome.tx_id
        if params.get("wait") != "commit":
            return web.json_response({"tx_id": tx_id.hex(), "status": "pending"}, status=202)
        if self.waiting >= self.max_waiters:
            # Admitted, but we will not hold one more connection open for it.
            return web.json_response({"tx_id": tx_id.hex(), "status": "pending"}, status=202)
        self.waiting += 1
        try:
            location = await self.service.wait_for_commit(tx_id, self.wait_commit_timeout_s)
        finally:
            self.waiting -= 1
        if location is None:
            return web.json_response({"tx_id": tx_id.hex(), "status": "pending"}, status=202)
        height, index = location
        block = self.service.store.get_block(height)
        receipts = self.service.store.get_receipts(height) or []
        receipt = receipts[index] if index < len(receipts) else None
        if block is None or receipt is None:  # committed but not yet readable: say pending
            return web.json_response({"tx_id": tx_id.hex(), "status": "pending"}, status=202)
        return web.json_response({"tx_id": tx_id.hex(), "status": "committed", "height": height,
                                  "index": index, "block_hash": block.block_hash.hex(),
                                  "receipt": receipt_json(receipt)}, status=200)

    async def get_tx(self, request: web.Request) -> web.Response:
        _query_params(request, {})
        tx_id = parse_hash(request.match_info["tx_id"], "bad_tx_id")
        store = self.service.store
        location = store.get_tx_location(tx_id)
        if location is None:
            status = "pending" if self.service.mempool_contains(tx_id) else "unknown"
            return web.json_response({"tx_id": tx_id.hex(), "status": status})
        height, index = location
        served = store.get_served_block(height)
        if served is None:
            raise StoreError("corrupt", f"tx index points at missing block {height}")
        _raw, block, _certificate = served
        if index >= len(block.txs) or block.txs[index].tx_id != tx_id:
            raise StoreError("corrupt", f"tx index entry does not match block {height}")
        tx_ids = [tx.tx_id for tx in block.txs]
        receipts = store.get_receipts(height)
        receipt = receipts[index] if receipts is not None and index < len(receipts) else None
        proof = {"tx_root": block.header.tx_root.hex(), "index": index, "size": len(tx_ids),
                 "path": [node.hex() for node in merkle.inclusion_proof(tx_ids, index)]}
        return web.json_response({
            "tx_id": tx_id.hex(), "status": "committed", "height": height, "index": index,
            "block_hash": block.block_hash.hex(),
            "receipt": receipt_json(receipt) if receipt is not None else None,
            "proof": proof,
            "certificate": certificate_json(store.get_certificate(height)),
        })

    # --- blocks ---------------------------------------------------------------------------

    async def get_block(self, request: web.Request) -> web.Response:
        params = _query_params(request, {"full": _BOOL})
        text = request.match_info["height"]
        store = self.service.store
        if text == "latest":
            height = store.latest_height()
            if height == 0:
                raise ApiError(404, "not_found", "no block has been committed yet")
        elif (parsed := codec.parse_decimal(text)) is not None and parsed > 0:
            height = parsed
        else:
            raise ApiError(400, "bad_height", "height must be a positive integer or 'latest'")
        served = store.get_served_block(height)
        if served is None:
            raise ApiError(404, "not_found", f"no block at height {height}")
        raw_block, block, certificate = served
        receipts = store.get_receipts(height)
        body: dict[str, Any] = {
            "height": height,
            "block_hash": block.block_hash.hex(),
            "header": header_json(block),
            "tx_ids": [tx.tx_id.hex() for tx in block.txs],
            "certificate": certificate_json(certificate),
            "raw": {"block": b64(raw_block),
                    "certificate": b64(certificate.encode()) if certificate else None,
                    "receipts": [b64(r.encode()) for r in receipts]
                    if receipts is not None else None},
        }
        if params.get("full") == "true":
            body["txs"] = [tx_json(tx) for tx in block.txs]
            body["receipts"] = [receipt_json(r) for r in receipts] if receipts is not None \
                else None
        return web.json_response(body)

    # --- state and domain views -----------------------------------------------------------

    def _query(self, path: str, prove: bool) -> web.Response:
        height = self.service.committed_height()
        try:
            value, proof = self.service.query(path, prove)
        except QueryError as exc:
            if exc.code == "not_found":
                raise ApiError(404, "not_found", exc.message) from None
            raise ApiError(400, "bad_query", exc.message) from None
        return web.json_response({"path": path, "height": height, "value": to_json(value),
                                  "proof": to_json(proof) if prove else None})

    async def get_state(self, request: web.Request) -> web.Response:
        params = _query_params(request, {"prove": _BOOL})
        path = request.match_info["path"]
        if len(path) > MAX_PATH_CHARS or not all(_QUERY_SEGMENT.match(part)
                                                 for part in path.split("/")):
            raise ApiError(400, "bad_query", "path segments are letters, digits and ._:-")
        return self._query(path, params.get("prove") == "true")

    def _domain_view(self, kind: str) -> Callable:
        async def handler(request: web.Request) -> web.Response:
            params = _query_params(request, {"prove": _BOOL})
            key = request.match_info["key"]
            if not _QUERY_SEGMENT.match(key):
                raise ApiError(400, "bad_query", "the id has letters, digits and ._:- only")
            return self._query(f"{kind}/{key}", params.get("prove") == "true")
        handler.__name__ = f"get_{kind}"
        return handler

    # --- node -----------------------------------------------------------------------------

    async def get_status(self, request: web.Request) -> web.Response:
        _query_params(request, {})
        return web.json_response(self.service.status())

    async def get_genesis(self, request: web.Request) -> web.Response:
        _query_params(request, {})
        return web.json_response(self.service.genesis_document())

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready, reason, fields = self.service.readiness()
        if not ready:
            raise ApiError(503, "not_ready", reason)
        return web.json_response({"ready": True, **fields})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.service.metrics_text(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/yaml")

    async def events(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        if not ws.can_prepare(request).ok:
            raise ApiError(400, "not_websocket", "GET /events needs a WebSocket upgrade")
        await ws.prepare(request)
        queue: asyncio.Queue = asyncio.Queue(maxsize=EVENTS_QUEUE_MAX_MESSAGES)
        unsubscribe = self.service.subscribe(queue)
        reader = asyncio.create_task(self._drain_incoming(ws))
        try:
            while not ws.closed:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                event = getter.result()
                if event is None:  # the node dropped a subscriber that fell behind
                    await ws.close(code=1008, message=b"too slow")
                    break
                try:
                    await ws.send_json(event)
                except ConnectionResetError:  # the subscriber went away mid-send
                    break
        finally:
            unsubscribe()
            reader.cancel()
            if not ws.closed:
                await ws.close()
        return ws

    @staticmethod
    async def _drain_incoming(ws: web.WebSocketResponse) -> None:
        async for _ in ws:  # subscribers have nothing to say; reading notices the close
            pass


# --- checking answers against the OpenAPI document (tests, clients) --------------------------

class OpenApiDocument:
    """node/openapi.yaml with a JSON Schema (2020-12) validator for each documented answer.

    Needs the ``jsonschema`` package (in the test extra); the node itself does not.
    """

    BASE_URI = "urn:huzhu:openapi"

    def __init__(self, text: bytes | None = None) -> None:
        import yaml
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.document = yaml.safe_load(text if text is not None else OPENAPI_PATH.read_bytes())
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(self.BASE_URI, resource)

    def operation(self, method: str, template: str) -> dict:
        try:
            return self.document["paths"][template][method.lower()]
        except KeyError:
            raise AssertionError(f"{method} {template} is not in the OpenAPI document") from None

    def response_schema_pointer(self, method: str, template: str, status: int) -> str | None:
        operation = self.operation(method, template)
        responses = operation["responses"]
        if str(status) not in responses:
            raise AssertionError(f"{method} {template} does not document status {status}")
        pointer = f"/paths/{_escape(template)}/{method.lower()}/responses/{status}"
        response = responses[str(status)]
        if "$ref" in response:
            pointer = response["$ref"].lstrip("#")
            response = self._resolve(pointer)
        content = response.get("content", {})
        if "application/json" not in content:
            return None
        return f"{pointer}/content/application~1json/schema"

    def _resolve(self, pointer: str) -> Any:
        node: Any = self.document
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def validate(self, method: str, template: str, status: int, body: Any) -> None:
        """Raise ``jsonschema.ValidationError`` (or AssertionError) unless ``body`` is a
        documented answer of ``method template`` with ``status``."""
        import jsonschema

        pointer = self.response_schema_pointer(method, template, status)
        if pointer is None:
            return
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$ref": f"{self.BASE_URI}#{pointer}"}
        validator = jsonschema.Draft202012Validator(
            schema, registry=self.registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        validator.validate(body)


def _escape(template: str) -> str:
    return template.replace("~", "~0").replace("/", "~1")
