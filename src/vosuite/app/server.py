"""The web server of ``vosuite app`` (FastAPI): a page (``static/``) and a small JSON / bytes API.

Each page load gets its own session, with its own work folder under a temporary root
(:class:`vosuite.app.session.AppSession`): the page carries the session's random id (in the page
itself, sent back as ``?session=`` or the ``X-Vosuite-Session`` header), so two tabs never share a
session and a reload's close of the old page cannot end the new one. A session ends when its page
closes (the page posts ``/api/session/close``), after ``session_ttl_s`` without a request (checked
at each request), or when the server stops, and its folder goes with it. Only requests addressed to
``127.0.0.1`` / ``localhost`` (or the host the server binds) are served: a web page that rebinds its
own domain to this machine gets a 400, not the user's files. Bad input (a file that is no video, an
empty mask, a mask of another size, a model without weights, ...) answers 400 with ``{"error": "one
line"}``, which the page shows; the server keeps running.

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
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from vosuite.app.jobs import Job, discovery_job, propagation_job
from vosuite.app.session import AppSession
from vosuite.errors import InputError
from vosuite.registry import DEFAULT_MODEL

STATIC = Path(__file__).with_name("static")
SESSION_PARAM, SESSION_HEADER = "session", "X-Vosuite-Session"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "testserver")  # testserver: FastAPI's test client


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
    everywhere = host in ("0.0.0.0", "::", "")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["*"] if everywhere else sorted({*LOCAL_HOSTS, host}))
    app.state.store = store
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(InputError)
    async def input_error(_request: Request, error: InputError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    def session_of(request: Request) -> AppSession:
        session = store.get(session_id_of(request))
        if session is None:
            raise InputError("this page's session has ended: reload the page")
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
        limit = int(max_upload_mb * 2**20)
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit:
            raise InputError(f"{name}: {declared / 2**20:.0f} MB is over the upload limit of {max_upload_mb:g} MB")
        upload = Path(tempfile.mkdtemp(prefix="upload-", dir=session.folder)) / _file_name(name, "video.mp4")
        try:
            received = 0
            with open(upload, "wb") as file:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > limit:
                        raise InputError(f"{name}: over the upload limit of {max_upload_mb:g} MB")
                    file.write(chunk)
            if received == 0:
                raise InputError(f"{name}: the file is empty")
            return await run_in_threadpool(_opened, session, upload, name)  # extraction: off the event loop
        finally:
            shutil.rmtree(upload.parent, ignore_errors=True)

    def _opened(session: AppSession, source: Path, name: str | None = None) -> dict:
        with session.start_lock:
            _stop_job(session)
            _refuse_if_running(session)  # a job that did not stop must not write into the next video
            video = session.open_video(source, name, max_frames=max_frames)
        return {"video": video.__dict__}

    @app.post("/api/open/path")
    def open_path(request: Request, body: dict) -> dict:
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
        data = await request.body()
        if width <= 0 or height <= 0 or len(data) != width * height:
            raise InputError(f"the mask has {len(data)} bytes, not width x height = {width}x{height}")
        session.set_annotation(index, np.frombuffer(data, np.uint8).reshape(height, width))
        return {"annotated": session.annotated_frames()}

    @app.post("/api/annotation/{index}/import")
    async def import_annotation(request: Request, index: int, name: str = "mask.png") -> dict:
        session = session_of(request)
        data = await request.body()
        if len(data) > 64 * 2**20:
            raise InputError(f"{name}: a mask PNG over 64 MB")
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=session.folder))
        png = folder / "mask.png"
        try:
            png.write_bytes(data)
            try:
                session.import_annotation(index, png)
            except InputError as error:
                raise InputError(str(error).replace(str(png), name)) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return {"annotated": session.annotated_frames()}

    @app.delete("/api/annotation/{index}")
    def delete_annotation(request: Request, index: int) -> dict:
        session = session_of(request)
        session.clear_annotation(index)
        return {"annotated": session.annotated_frames()}

    @app.post("/api/propagate")
    def propagate(request: Request, body: dict) -> dict:
        session = session_of(request)
        name, runtime = str(body.get("model") or DEFAULT_MODEL), str(body.get("runtime") or "eager")
        if runtime not in runtimes():
            raise InputError(f"runtime {runtime!r}: choose {' or '.join(runtimes())}")
        frame = _integer(body.get("frame", 0), "frame")
        with session.start_lock:  # from the check to the new job: a double click starts one job
            _refuse_if_running(session)
            segmenter = models.get(("segment", name, runtime), lambda: _segmenter(name, runtime))
            session.job = propagation_job(session, segmenter, frame, str(body.get("direction", "forward")))
        return {"job": session.job.status.as_dict()}

    @app.post("/api/discover")
    def discover(request: Request, body: dict) -> dict:
        session = session_of(request)
        session.require_video()
        name = str(body.get("model") or "motion-saliency")
        with session.start_lock:
            _refuse_if_running(session)
            discoverer = models.get(("discover", name), lambda: _discoverer(name))
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


def _segmenter(name: str, runtime: str):
    from vosuite.registry import get_spec
    from vosuite.segment import Segmenter

    spec = get_spec(name)  # InputError naming the known models
    if model_task_of(name) != "semi":
        raise InputError(f"{spec.name} does not follow given masks: use Find objects")
    if spec.trained and not spec.ships_weights:
        from vosuite.inference.weights import missing_weights_message

        raise InputError(missing_weights_message(spec.name))
    return Segmenter(spec.name, progress=False, runtime=runtime)


def _discoverer(name: str):
    from vosuite.discover import Discoverer
    from vosuite.registry import get_spec

    spec = get_spec(name)
    if model_task_of(name) != "unsupervised":
        raise InputError(f"{spec.name} follows given masks: use Propagate")
    if spec.trained and not spec.ships_weights:
        from vosuite.inference.weights import missing_weights_message

        raise InputError(missing_weights_message(spec.name))
    return Discoverer(spec.name, progress=False)


def model_task_of(name: str) -> str:
    from vosuite.registry import get_spec, model_task

    return model_task(get_spec(name))


def model_menus() -> dict:
    """The propagation menu (models that follow given masks) and the find-objects menu
    (unsupervised ones); each entry says whether it can run here (weights shipped or none needed)."""
    from vosuite.io.masks import davis_palette
    from vosuite.registry import DEFAULT_MODEL, MODELS, list_models, model_task

    menus: dict[str, list] = {"propagate": [], "discover": [], "default": DEFAULT_MODEL, "runtimes": list(runtimes()),
                              "palette": davis_palette().tolist()}
    for name in list_models():
        spec = MODELS[name]
        task = model_task(spec)
        if task not in ("semi", "unsupervised"):
            continue
        ready = (not spec.trained) or spec.ships_weights
        menus["propagate" if task == "semi" else "discover"].append(
            {"name": name, "summary": spec.summary, "ready": ready, "default": name == DEFAULT_MODEL})
    return menus
