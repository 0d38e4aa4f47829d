"""Request size limits of the model server: body bytes (HTTP 413) and rows (HTTP 422).

Both are read from the server process's environment, with defaults far above what
``churn predict`` sends (1,000 rows, about 100 kB, per request):

- ``CHURN_SERVE_MAX_BODY_BYTES`` (default 8 MiB): larger request bodies, after gzip
  decompression, get **413** before they are parsed (:class:`BodyLimitMiddleware`, installed
  by :mod:`churn_kfp.serving.launch`); the same limit caps gRPC messages.
- ``CHURN_SERVE_MAX_ROWS`` (default 10,000): larger batches get **422**
  (:class:`churn_kfp.serving.runtime.ValidatingMLflowRuntime`).

This module imports nothing heavy; the middleware is plain ASGI.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_BODY_ENV = "CHURN_SERVE_MAX_BODY_BYTES"
MAX_ROWS_ENV = "CHURN_SERVE_MAX_ROWS"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_ROWS = 10_000

_Message = dict[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]


@dataclass(frozen=True)
class RequestLimits:
    """The largest request the server accepts.

    Attributes:
        max_body_bytes: Request body bytes (decompressed).
        max_rows: Rows per inference request.
    """

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_rows: int = DEFAULT_MAX_ROWS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RequestLimits:
        """Reads :data:`MAX_BODY_ENV` and :data:`MAX_ROWS_ENV` (defaults when unset).

        Raises:
            ValueError: A value that is not a positive whole number (naming the variable).
        """
        env = os.environ if environ is None else environ
        return cls(
            max_body_bytes=_positive(env, MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES),
            max_rows=_positive(env, MAX_ROWS_ENV, DEFAULT_MAX_ROWS),
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a positive whole number, got {env[name]!r}")
    return int(raw)


class BodyLimitMiddleware:
    """ASGI middleware: HTTP 413 for request bodies over ``max_body_bytes``.

    A declared ``Content-Length`` over the limit is refused before anything is read; other
    bodies are read up to the limit only. Gzip bodies are decompressed here, up to the limit
    (a small compressed body can expand to gigabytes), and passed on uncompressed.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], max_body_bytes: int):
        self.app = app
        self.max_body_bytes = int(max_body_bytes)

    async def __call__(self, scope: _Message, receive: _Receive, send: _Send) -> None:
        """Handles one ASGI scope: HTTP request bodies are checked, the rest passed on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").strip()
        if declared and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._refuse(send, declared.decode("latin-1"))
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > self.max_body_bytes:
                await self._refuse(send, f"more than {self.max_body_bytes}")
                return
        if b"gzip" in headers.get(b"content-encoding", b"").lower():
            try:
                inflated = _gunzip(bytes(body), self.max_body_bytes)
            except zlib.error as exc:
                await _respond(send, 400, f"request body is not valid gzip: {exc}")
                return
            if inflated is None:
                await self._refuse(send, f"more than {self.max_body_bytes} (decompressed)")
                return
            body = bytearray(inflated)
            kept = [(k, v) for k, v in scope["headers"] if k not in _REWRITTEN]
            length = (b"content-length", str(len(body)).encode())
            scope = {**scope, "headers": [*kept, length]}
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _refuse(self, send: _Send, size: str) -> None:
        await _respond(
            send,
            413,
            f"request body of {size} bytes is over the server's limit of "
            f"{self.max_body_bytes} bytes ({MAX_BODY_ENV}); send fewer rows per request",
        )


_REWRITTEN = {b"content-encoding", b"content-length"}


def _gunzip(data: bytes, limit: int) -> bytes | None:
    """Decompresses gzip data; ``None`` when it expands beyond ``limit`` bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        return None
    return out


def _replay(body: bytes, receive: _Receive) -> _Receive:
    sent = False

    async def replayed() -> _Message:
        nonlocal sent
        if sent:
            return await receive()  # the app waits for a disconnect after the body
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _respond(send: _Send, status: int, error: str) -> None:
    payload = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
