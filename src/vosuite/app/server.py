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
import html
import json
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from vosuite.app.jobs import Job, discovery_job, propagation_job
from vosuite.app.session import SESSION_ENDED, AppSession
from vosuite.errors import InputError
from vosuite.options import DEFAULT_MODEL

STATIC = Path(__file__).with_name("static")
SESSION_PARAM, SESSION_HEADER = "session", "X-Vosuite-Session"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
JSON_LIMIT = 2**20  # bytes of a JSON request body
PNG_LIMIT = 64 * 2**20  # bytes of an imported mask PNG


class TooLarge(InputError):
    """A request body over its endpoint's cap (answered 413)."""


class SessionStore:
    """The live sessions, each with a folder under ``root`` (a temporary folder vosuite made)."""

    def __init__(self, work_dir: Path | None, ttl_s: float) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vosuite-app-", dir=work_dir))
        self.ttl_s = ttl_s
        self.sessions: dict[str, AppSession] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str | None) -> AppSession | None:
        self.expire()
        with self._lock:
            session = self.sessions.get(session_id or "")
        if session is not None:
            session.last_seen = time.monotonic()
        return session

    def create(self) -> AppSession:
        self.expire()
        with self._lock:
            session_id = secrets.token_urlsafe(16)
            session = self.sessions[session_id] = AppSession(self.root / session_id)
            session.folder.mkdir()
            session.id = session_id
        return session

    def close(self, session_id: str) -> None:
        with self._lock:
            session = self.sessions.pop(session_id, None)
        if session is not None:
            _end(session)

    def expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            old = [key for key, s in self.sessions.items()
                   if now - s.last_seen > self.ttl_s and not (s.job is not None and s.job.running)]
        for key in old:
            self.close(key)

    def shutdown(self) -> None:
        for key in list(self.sessions):
            self.close(key)
        shutil.rmtree(self.root, ignore_errors=True)

    def scrub(self, message: str) -> str:
        """``message`` on one line, each path under the session root cut to its last part: what
        the client sees never shows the server's folders."""
        for root in {str(self.root), str(self.root.resolve())}:
            message = re.sub(re.escape(root) + r"[^\s:;,'\"()]*", lambda found: Path(found.group()).name, message)
        return " ".join(message.split())


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


def _end(session: AppSession) -> None:
    session.remove()  # first: a job still writing fails at its next mask instead of recreating the folder
    if session.job is not None:
        session.job.stop(timeout=30)


class ModelCache:
    """The last few loaded segmenters / discoverers, shared by the sessions (loading weights takes
    a second; each job still gets its own per-video state)."""

    def __init__(self, size: int = 2) -> None:
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: tuple, build) -> object:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


def create_app(work_dir: Path | None = None, max_upload_mb: float = 500.0, max_frames: int = 10_000,
               session_ttl_s: float = 3600.0, host: str = "127.0.0.1") -> FastAPI:
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
    models = ModelCache()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        store.shutdown()

    app = FastAPI(title="vosuite", lifespan=lifespan)
    # bound to every interface (--host 0.0.0.0), the machine answers to names it cannot know: no Host check
    if host not in ("0.0.0.0", "::", ""):
        app.add_middleware(LocalHostOnly, allowed=(*LOCAL_HOSTS, host_name(host) or host))
    app.state.store = store
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _answer_errors_in_one_line(app, store)

    def session_of(request: Request) -> AppSession:
        session = store.get(session_id_of(request))
        if session is None:
            raise InputError(SESSION_ENDED)
        return session

    @app.get("/")
    def index() -> Response:
        session = store.create()  # every page load: its own session
        page = (STATIC / "index.html").read_text(encoding="utf-8").replace("{{SESSION}}", html.escape(session.id))
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/api/models")
    def list_models_for_menus() -> dict:
        return model_menus()

    @app.post("/api/open/upload")
    async def open_upload(request: Request, name: str = "video.mp4") -> dict:
        session = session_of(request)
        too_large = f"{name}: over the upload limit of {max_upload_mb:g} MB"
        with _received(session, _file_name(name, "video.mp4"), name) as upload:
            if await receive_file(request, upload, int(max_upload_mb * 2**20), too_large) == 0:
                raise InputError(f"{name}: the file is empty")
            return await run_in_threadpool(_opened, session, upload, name)  # extraction: off the event loop

    def _opened(session: AppSession, source: Path, name: str | None = None) -> dict:
        video = session.open_video(source, name, max_frames=max_frames, make_room=lambda: _make_room(session))
        return {"video": video.__dict__}

    @app.post("/api/open/path")
    def open_path(request: Request, body: JsonBody) -> dict:
        session = session_of(request)
        path = Path(str(body.get("path", "")).strip()).expanduser()
        if not str(body.get("path", "")).strip():
            raise InputError("give the path of a video file or a frames folder")
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        return _opened(session, path)

    @app.get("/api/status")
    def status(request: Request) -> dict:
        session = session_of(request)
        job = session.job.status.as_dict() if session.job is not None else None
        if job is not None and job["error"]:
            job["error"] = store.scrub(job["error"])
        return {"video": session.video.__dict__ if session.video else None, "job": job,
                "annotated": session.annotated_frames() if session.video else [],
                "propagated": session.propagated_frames()}

    @app.get("/api/frame/{index}")
    def frame(request: Request, index: int) -> FileResponse:
        return FileResponse(session_of(request).frame_path(index), media_type="image/jpeg",
                            headers={"Cache-Control": "no-store"})

    @app.get("/api/mask/{index}")
    def mask(request: Request, index: int) -> Response:
        labels, kind = session_of(request).labels(index)
        return Response(np.ascontiguousarray(labels, np.uint8).tobytes(), media_type="application/octet-stream",
                        headers={"X-Mask-Kind": kind, "Cache-Control": "no-store"})

    @app.put("/api/annotation/{index}")
    async def put_annotation(request: Request, index: int, width: int, height: int) -> dict:
        session = session_of(request)
        video, size = session.require_video(), f"{width}x{height}"
        session.frame_index(index)
        if (width, height) != (video.width, video.height):  # the body's cap follows: refuse before reading
            raise InputError(f"the mask is {size}, the video's frames are {video.width}x{video.height}")
        data = await read_body(request, width * height, f"the mask is over width x height = {size} bytes")
        if len(data) != width * height:
            raise InputError(f"the mask has {len(data)} bytes, not width x height = {size}")
        labels = np.frombuffer(data, np.uint8).reshape(height, width)
        await run_in_threadpool(session.set_annotation, index, labels)
        return {"annotated": session.annotated_frames()}

    @app.post("/api/annotation/{index}/import")
    async def import_annotation(request: Request, index: int, name: str = "mask.png") -> dict:
        session = session_of(request)
        session.frame_index(index)
        with _received(session, "mask.png", name) as png:
            await receive_file(request, png, PNG_LIMIT, f"{name}: a mask PNG over {PNG_LIMIT // 2**20} MB")
            await run_in_threadpool(session.import_annotation, index, png)
        return {"annotated": session.annotated_frames()}

    @app.delete("/api/annotation/{index}")
    def delete_annotation(request: Request, index: int) -> dict:
        session = session_of(request)
        session.clear_annotation(index)
        return {"annotated": session.annotated_frames()}

    @app.post("/api/propagate")
    def propagate(request: Request, body: JsonBody) -> dict:
        session = session_of(request)
        name, runtime = str(body.get("model") or DEFAULT_MODEL), str(body.get("runtime") or "eager")
        if runtime not in runtimes():
            raise InputError(f"runtime {runtime!r}: choose {' or '.join(runtimes())}")
        frame = _integer(body.get("frame", 0), "frame")
        with session.start_lock:  # from the check to the new job: a double click starts one job
            _refuse_if_running(session)
            segmenter = models.get(("segment", name, runtime), lambda: _load_model(name, "semi", runtime))
            session.job = propagation_job(session, segmenter, frame, str(body.get("direction", "forward")))
        return {"job": session.job.status.as_dict()}

    @app.post("/api/discover")
    def discover(request: Request, body: JsonBody) -> dict:
        session = session_of(request)
        session.require_video()
        name = str(body.get("model") or "motion-saliency")
        with session.start_lock:
            _refuse_if_running(session)
            discoverer = models.get(("discover", name), lambda: _load_model(name, "unsupervised"))
            session.job = discovery_job(session, discoverer)
        return {"job": session.job.status.as_dict()}

    @app.post("/api/stop")
    def stop(request: Request) -> dict:
        session = session_of(request)
        _stop_job(session)
        return {"job": session.job.status.as_dict() if session.job else None}

    downloads = {"masks.zip": (AppSession.masks_zip, "application/zip"),
                 "overlay.mp4": (AppSession.overlay_video, "video/mp4")}

    @app.get("/api/download/{name}")
    def download(request: Request, name: str) -> FileResponse:
        if name not in downloads:
            raise InputError(f"{name}: nothing to download by that name (masks.zip or overlay.mp4)")
        session = session_of(request)
        _refuse_if_running(session)
        make, media_type = downloads[name]
        path = make(session)
        return FileResponse(path, media_type=media_type, filename=path.name)

    @app.post("/api/session/close")
    def close_session(request: Request) -> dict:
        store.close(session_id_of(request) or "")
        return {"closed": True}

    return app


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


@contextlib.contextmanager
def _received(session: AppSession, file_name: str, user_name: str) -> Iterator[Path]:
    """A path in a fresh scratch folder of the session for a file being received; the folder goes
    afterwards, and an InputError meanwhile names ``user_name`` instead of that path."""
    folder = session.scratch()
    path = folder / file_name
    try:
        yield path
    except InputError as error:
        raise type(error)(str(error).replace(str(path), user_name)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


def runtimes() -> tuple[str, ...]:
    from vosuite.onnx.runtime import RUNTIMES

    return RUNTIMES


def _integer(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(f"{what} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{what} must be an integer, got {value!r}") from None


def _file_name(name: str, default: str) -> str:
    """The last part of an uploaded file's name, or ``default`` for names such as ``""`` and ``..``."""
    last = Path(name).name
    return last if last not in ("", ".", "..") else default


def _refuse_if_running(session: AppSession) -> None:
    if session.job is not None and session.job.running:
        raise InputError("a job is running: wait for it or press Stop")


def _stop_job(session: AppSession) -> None:
    job: Job | None = session.job
    if job is not None and job.running:
        job.stop(timeout=60)


def _make_room(session: AppSession) -> None:
    """Stop the session's job before another video replaces this one; refuse if it would not stop
    (it must not write into the next video)."""
    _stop_job(session)
    _refuse_if_running(session)


OTHER_MENU = {"semi": "does not follow given masks: use Find objects",
              "unsupervised": "follows given masks: use Propagate"}


def _load_model(name: str, task: str, runtime: str = "eager"):
    """A :class:`vosuite.Segmenter` (``task`` "semi", run by ``runtime``) or a
    :class:`vosuite.Discoverer` ("unsupervised") of the registry's model ``name``; an InputError
    naming the known models, or when the model belongs to the other menu or lacks its weights."""
    from vosuite.factory import missing_weights_message, ships_weights
    from vosuite.registry import get_spec

    spec = get_spec(name)
    if spec.task != task:
        raise InputError(f"{spec.name} {OTHER_MENU[task]}")
    if spec.trained and not ships_weights(spec):
        raise InputError(missing_weights_message(spec))
    if task == "semi":
        from vosuite.segment import Segmenter

        return Segmenter(spec.name, progress=False, runtime=runtime)
    from vosuite.unsupervised.discoverer import Discoverer

    return Discoverer(spec.name, progress=False)


def model_menus() -> dict:
    """The propagation menu (models that follow given masks) and the find-objects menu
    (unsupervised ones); each entry says whether it can run here (weights shipped or none needed)."""
    from vosuite.factory import list_models, ships_weights
    from vosuite.io.masks import davis_palette
    from vosuite.registry import MODELS

    menus: dict[str, list] = {"propagate": [], "discover": [], "default": DEFAULT_MODEL, "runtimes": list(runtimes()),
                              "palette": davis_palette().tolist()}
    for name in list_models():
        spec = MODELS[name]
        task = spec.task
        if task not in ("semi", "unsupervised"):
            continue
        ready = (not spec.trained) or ships_weights(spec)
        menus["propagate" if task == "semi" else "discover"].append(
            {"name": name, "summary": spec.summary, "ready": ready, "default": name == DEFAULT_MODEL})
    return menus
