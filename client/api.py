"""A small synchronous HTTP client for a huzhu node's REST API.

Used by the CLI, the audit and the demo. Every call has a timeout; connection failures (a
node that is starting, restarting or briefly unreachable) are retried a bounded number of
times with capped backoff; an HTTP error answer becomes an ``ApiError`` carrying the API's
``{"error": {"code", "message"}}``. Only the standard library is used, so the client works
in any thread and needs no event loop.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ledger.types import Transaction

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 3
RETRY_BACKOFF_START_S = 0.2
RETRY_BACKOFF_MAX_S = 2.0
COMMIT_WAIT_TIMEOUT_S = 30.0  # how long ?wait=commit may block on the node's side
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class ClientError(Exception):
    """Base of the client's errors; ``code`` is a short reason code, ``str()`` one line."""

    code = "client_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NodeUnreachable(ClientError):
    """No answer from the node after every retry (connection refused, reset, timed out)."""

    code = "unreachable"


class ApiError(ClientError):
    """The node answered with an HTTP error status and (usually) an error object."""

    def __init__(self, status: int, code: str, message: str, url: str = "") -> None:
        super().__init__(message, code)
        self.status = status
        self.url = url

    def __str__(self) -> str:
        return f"{self.code}: {self.message} (HTTP {self.status})"


class NotFound(ApiError):
    """404: the block, transaction, member, claim ... does not exist."""


class Rejected(ApiError):
    """400/422: the node refused a transaction or request as invalid."""


class Busy(ApiError):
    """429/503: the mempool is full or the node is not ready; try again later."""


def _error_class(status: int) -> type[ApiError]:
    if status == 404:
        return NotFound
    if status in (429, 503):
        return Busy
    if 400 <= status < 500:
        return Rejected
    return ApiError


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Any  # parsed JSON, or bytes for binary answers


class Client:
    """One node's REST API. ``base_url`` like ``http://127.0.0.1:26657``."""

    def __init__(self, base_url: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 retries: int = DEFAULT_RETRIES) -> None:
        if "://" not in base_url:
            base_url = "http://" + base_url
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    # --- transport -------------------------------------------------------------------

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = self.base_url + path
        if params:
            query = {k: (str(v).lower() if isinstance(v, bool) else v)
                     for k, v in params.items() if v is not None}
            if query:
                url += "?" + urllib.parse.urlencode(query)
        return url

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json_body: Any = None, data: bytes | None = None,
                content_type: str | None = None, timeout_s: float | None = None,
                retry: bool = True) -> Response:
        """One HTTP exchange; connection failures are retried (the request never reached a
        handler, or a GET is idempotent), HTTP errors are raised as typed ``ApiError``s."""
        url = self.url(path, params)
        headers = {"Accept": "application/json"}
        if json_body is not None:
            data = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        attempts = 1 + (self.retries if retry else 0)
        backoff_s = RETRY_BACKOFF_START_S
        last_error: Exception | None = None
        for attempt in range(attempts):
            request = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as reply:
                    return Response(reply.status, _parse_body(reply, MAX_RESPONSE_BYTES))
            except urllib.error.HTTPError as exc:
                raise _api_error(exc, url) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                last_error = exc
                if attempt + 1 < attempts:
                    time.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, RETRY_BACKOFF_MAX_S)
        reason = getattr(last_error, "reason", last_error)
        raise NodeUnreachable(f"cannot reach node at {self.base_url}: {reason}")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).body

    # --- endpoints -------------------------------------------------------------------

    def status(self) -> dict:
        return self.get("/status")

    def healthz(self) -> Any:
        return self.get("/healthz")

    def readyz(self) -> bool:
        try:
            self.request("GET", "/readyz", retry=False)
        except (ApiError, NodeUnreachable):
            return False
        return True

    def genesis(self) -> dict:
        return self.get("/genesis")

    def block(self, height: int | str = "latest", full: bool = False) -> dict:
        """A committed block: decoded header, tx ids, certificate, and under ``raw`` the
        canonical encodings (base64) of the block, certificate and receipts; ``full`` adds
        the decoded transactions and receipts."""
        return self.get(f"/blocks/{height}", full="true" if full else None)

    def tx(self, tx_id: bytes | str) -> dict:
        tx_hex = tx_id.hex() if isinstance(tx_id, bytes) else tx_id
        return self.get(f"/txs/{tx_hex}")

    def submit(self, tx: Transaction, wait: bool = False,
               timeout_s: float = COMMIT_WAIT_TIMEOUT_S) -> dict:
        """POST a signed transaction. Without ``wait`` the node answers 202 with the tx id
        once admitted to its mempool; with ``wait`` it answers once the tx is committed."""
        params = {"wait": "commit"} if wait else None
        # A POST is retried only on connection failures before any answer; a resent tx is
        # deduplicated by id in the mempool and by nonce in the contract, so it is safe.
        return self.request("POST", "/txs", params=params,
                            json_body={"tx": tx.encode().hex()},
                            timeout_s=(timeout_s + self.timeout_s) if wait else None).body

    def state(self, path: str, prove: bool = False) -> dict:
        """An application query: ``{"path", "height", "value", "proof"}``."""
        return self.get("/state/" + path.lstrip("/"), prove="true" if prove else None)

    def member(self, member_id: str) -> dict:
        return self.get(f"/members/{member_id}")

    def claim(self, claim_id: str | int) -> dict:
        return self.get(f"/claims/{claim_id}")

    def settlement(self, period: str | int) -> dict:
        return self.get(f"/settlements/{period}")

    def jury(self, claim_id: str | int) -> dict:
        return self.get(f"/jury/{claim_id}")


def _parse_body(reply: Any, max_bytes: int) -> Any:
    raw = reply.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ClientError(f"answer larger than {max_bytes} bytes", "oversize")
    content_type = reply.headers.get("Content-Type", "")
    if "json" in content_type or (raw[:1] in (b"{", b"[") and "octet" not in content_type):
        try:
            return json.loads(raw)
        except ValueError:
            raise ClientError("node sent malformed JSON", "malformed_answer") from None
    if content_type.startswith("text/"):
        return raw.decode(errors="replace")
    return raw


def _api_error(exc: urllib.error.HTTPError, url: str) -> ApiError:
    status = exc.code
    code, message = f"http_{status}", exc.reason or "HTTP error"
    try:
        body = json.loads(exc.read(MAX_RESPONSE_BYTES) or b"null")
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code") or code)
            message = str(error.get("message") or message)
    except (ValueError, OSError):
        pass
    return _error_class(status)(status, code, message, url)
