"""Reading requests: bodies read chunk by chunk up to a cap, JSON bodies, the session a request
belongs to."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from vosuite.errors import InputError

SESSION_PARAM, SESSION_HEADER = "session", "X-Vosuite-Session"
JSON_LIMIT = 2**20  # bytes of a JSON request body
PNG_LIMIT = 64 * 2**20  # bytes of an imported mask PNG


class TooLarge(InputError):
    """A request body over its endpoint's cap (answered 413)."""


async def body_chunks(request: Request, limit: int, too_large: str) -> AsyncIterator[bytes]:
    """The request's body as it arrives, at most ``limit`` bytes: a TooLarge(``too_large``) as soon
    as the declared Content-Length or the running total passes the cap, so the rest is never read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(too_large)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise TooLarge(too_large)
        yield chunk


async def read_body(request: Request, limit: int, too_large: str) -> bytes:
    """The whole body in memory, for small caps (:func:`body_chunks`)."""
    return b"".join([chunk async for chunk in body_chunks(request, limit, too_large)])


async def receive_file(request: Request, path: Path, limit: int, too_large: str) -> int:
    """Write the body to ``path`` chunk by chunk (:func:`body_chunks`); returns its size in bytes."""
    size = 0
    with open(path, "wb") as file:
        async for chunk in body_chunks(request, limit, too_large):
            file.write(chunk)
            size += len(chunk)
    return size


async def json_body(request: Request) -> dict:
    """A JSON object of at most JSON_LIMIT bytes: the body dependency of the JSON endpoints (a plain
    ``body: dict`` parameter would have FastAPI read the whole body before any check)."""
    data = await read_body(request, JSON_LIMIT, f"the request's JSON is over {JSON_LIMIT // 2**10} KB")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise InputError("the request's body is not JSON") from None
    if not isinstance(body, dict):
        raise InputError("the request's body must be a JSON object")
    return body


JsonBody = Annotated[dict, Depends(json_body)]


def session_id_of(request: Request) -> str | None:
    """The session a request belongs to: ``?session=`` (frames, downloads, the close beacon) or the
    ``X-Vosuite-Session`` header."""
    return request.query_params.get(SESSION_PARAM) or request.headers.get(SESSION_HEADER)


def page_session(page: str) -> str:
    """The session id a served page carries (what its script sends back): for API clients."""
    found = re.search(r'<meta name="vosuite-session" content="([^"]+)">', page)
    if found is None:
        raise InputError("not a vosuite app page (no session id)")
    return html.unescape(found.group(1))
