"""The web server of ``vosuite app`` (FastAPI): a page (``static/``) and a small JSON / bytes API.

Each page load gets its own session, with its own work folder under a temporary root
(:class:`vosuite.app.session.AppSession`): the page carries the session's random id (in the page
itself, sent back as ``?session=`` or the ``X-Vosuite-Session`` header), so two tabs never share a
session and a reload's close of the old page cannot end the new one. A session ends when its page
closes (the page posts ``/api/session/close``), after ``session_ttl_s`` without a request (checked
at each request), or when the server stops, and its folder goes with it. Only requests addressed to
``127.0.0.1``, ``localhost`` or ``::1`` (any port), or to the host the server binds, are served: a
web page that rebinds its own domain to this machine gets a 400, not the user's files.

Bad input (a file that is no video, an empty mask, a mask of another size, a model without
weights, ...) answers 400 with ``{"error": "one line"}``, which the page shows; the server keeps
running. Error messages never show the server's folders: a received file is named as the user
named it. Request bodies are read chunk by chunk up to a cap per endpoint (the upload limit, the
mask's width x height bytes, 64 MB for a mask PNG, 1 MB of JSON): a body over it answers 413 as
soon as its Content-Length or its running total passes the cap, and the rest is never read.

API (every path under ``/api``; ``{i}`` a frame index):

    GET  models                       the registry's models for the two menus, the DAVIS palette
    POST open/upload?name=F           body: the video file's bytes (at most max_upload_mb)
    POST open/path                    {"path": a video file or frames folder on the server}
    GET  status                       the video, the job's progress and fps, the annotated frames
    GET  frame/{i}                    the frame, JPEG
    GET  mask/{i}                     its mask: H*W bytes of object ids (X-Mask-Kind: annotation,
                                      propagated or empty)
    PUT  annotation/{i}?width&height  body: H*W bytes of object ids, the user's mask there
    POST annotation/{i}/import        body: a mask PNG (palette or grey ids)
    DELETE annotation/{i}
    POST propagate                    {"frame", "direction": forward|backward|both, "model", "runtime"}
    POST discover                     {"model": motion-saliency, ellipse or a bba model}
    POST stop
    GET  download/masks.zip           palette PNGs in DAVIS layout
    GET  download/overlay.mp4
    POST session/close
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from vosuite.app.requests import SESSION_HEADER, SESSION_PARAM, TooLarge, page_session
from vosuite.app.routes import STATIC, AppState, router
from vosuite.app.store import ModelCache, SessionStore
from vosuite.errors import InputError

__all__ = ["SESSION_HEADER", "SESSION_PARAM", "create_app", "page_session"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def create_app(work_dir: Path | None = None, max_upload_mb: float = 500.0, max_frames: int = 10_000,
               session_ttl_s: float = 3600.0, host: str = "127.0.0.1") -> FastAPI:
    """The app: its settings checked, a session store under ``work_dir``, the routes of
    :mod:`vosuite.app.routes`, the Host check, and every error answered in one line."""
    if max_upload_mb <= 0:
        raise InputError(f"--max-upload-mb must be positive, got {max_upload_mb:g}")
    if max_frames <= 0:
        raise InputError(f"--max-frames must be positive, got {max_frames}")
    if work_dir is not None and not Path(work_dir).is_dir():
        raise InputError(f"--work-dir {work_dir}: no such folder")
    try:
        store = SessionStore(work_dir, session_ttl_s)
    except OSError as error:
        raise InputError(f"--work-dir {work_dir or tempfile.gettempdir()}: cannot create a folder there "
                         f"({error.strerror or error})") from None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        store.shutdown()

    app = FastAPI(title="vosuite", lifespan=lifespan)
    # bound to every interface (--host 0.0.0.0), the machine answers to names it cannot know: no Host check
    if host not in ("0.0.0.0", "::", ""):
        app.add_middleware(LocalHostOnly, allowed=(*LOCAL_HOSTS, host_name(host) or host))
    app.state.store = store
    app.state.vosuite = AppState(store, ModelCache(), max_upload_mb, max_frames)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    _answer_errors_in_one_line(app, store)
    return app


class LocalHostOnly:
    """ASGI middleware: serve an HTTP request only when its Host header names one of ``allowed``
    (any port; ``[::1]:7860`` is ``::1``), else a 400 with a one-line JSON error. A page of another
    site that rebinds its own domain to this machine sends its domain as the Host."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app, self.allowed = app, frozenset(host.lower() for host in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and host_name(Headers(scope=scope).get("host", "")) not in self.allowed:
            names = " or ".join(sorted(self.allowed))
            response = JSONResponse({"error": f"this app answers only requests addressed to {names}"}, 400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def host_name(header: str) -> str:
    """The host of a Host header, lower case, without its port or IPv6 brackets (``[::1]:80`` ->
    ``::1``); ``""`` for a malformed header."""
    header = header.strip().lower()
    if header.startswith("["):
        host, bracket, port = header[1:].partition("]")
        return host if bracket and (not port or (port[0] == ":" and port[1:].isdigit())) else ""
    if header.count(":") > 1:  # an IPv6 address without brackets (and so without a port)
        return header
    host, colon, port = header.partition(":")
    return host if not colon or port.isdigit() else ""


def _answer_errors_in_one_line(app: FastAPI, store: SessionStore) -> None:
    """Every refused request answers ``{"error": "one line"}``: bad input 400, a body over its cap
    413 (and the connection closes), a malformed query 400, an unknown path or method 404 / 405."""

    @app.exception_handler(InputError)
    async def input_error(_request: Request, error: InputError) -> JSONResponse:
        if isinstance(error, TooLarge):  # closing the connection stops the server reading the rest
            return JSONResponse({"error": store.scrub(str(error))}, status_code=413, headers={"Connection": "close"})
        return JSONResponse({"error": store.scrub(str(error))}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
        return JSONResponse({"error": store.scrub(f"{where}: {first.get('msg', 'invalid')}")}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": store.scrub(str(error.detail))}, status_code=error.status_code,
                            headers=error.headers)
