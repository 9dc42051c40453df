"""The routes of ``vosuite app`` (the API listed in :mod:`vosuite.app.server`), on one router.

Every route that works on a session takes it through the :data:`CurrentSession` dependency; the
server's settings and shared state come from ``request.app.state`` (:class:`AppState`). Starting a
job goes through one runner helper, :func:`start_job`.
"""

from __future__ import annotations

import contextlib
import html
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response

from vosuite.app.jobs import Job, discovery_job, propagation_job
from vosuite.app.requests import PNG_LIMIT, JsonBody, read_body, receive_file, session_id_of
from vosuite.app.session import SESSION_ENDED, AppSession
from vosuite.app.store import ModelCache, SessionStore
from vosuite.errors import InputError
from vosuite.options import DEFAULT_DISCOVER_MODEL, DEFAULT_MODEL, RUNTIMES

STATIC = Path(__file__).with_name("static")
router = APIRouter()


@dataclass
class AppState:
    """What the routes share: the sessions, the model cache and the server's limits."""

    store: SessionStore
    models: ModelCache
    max_upload_mb: float
    max_frames: int


def app_state(request: Request) -> AppState:
    return request.app.state.vosuite


def current_session(request: Request) -> AppSession:
    """The session the request names; an InputError when it ended (or never was)."""
    session = app_state(request).store.get(session_id_of(request))
    if session is None:
        raise InputError(SESSION_ENDED)
    return session


CurrentSession = Annotated[AppSession, Depends(current_session)]
State = Annotated[AppState, Depends(app_state)]


@router.get("/")
def index(state: State) -> Response:
    session = state.store.create()  # every page load: its own session
    page = (STATIC / "index.html").read_text(encoding="utf-8").replace("{{SESSION}}", html.escape(session.id))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/api/models")
def list_models_for_menus() -> dict:
    return model_menus()


@router.post("/api/open/upload")
async def open_upload(request: Request, session: CurrentSession, state: State, name: str = "video.mp4") -> dict:
    too_large = f"{name}: over the upload limit of {state.max_upload_mb:g} MB"
    with _received(session, _file_name(name, "video.mp4"), name) as upload:
        if await receive_file(request, upload, int(state.max_upload_mb * 2**20), too_large) == 0:
            raise InputError(f"{name}: the file is empty")
        return await run_in_threadpool(_opened, session, state, upload, name)  # extraction: off the event loop


@router.post("/api/open/path")
def open_path(session: CurrentSession, state: State, body: JsonBody) -> dict:
    text = str(body.get("path", "")).strip()
    if not text:
        raise InputError("give the path of a video file or a frames folder")
    path = Path(text).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    return _opened(session, state, path)


def _opened(session: AppSession, state: AppState, source: Path, name: str | None = None) -> dict:
    video = session.open_video(source, name, max_frames=state.max_frames, make_room=lambda: _make_room(session))
    return {"video": video.__dict__}


@router.get("/api/status")
def status(session: CurrentSession, state: State) -> dict:
    job = session.job.status.as_dict() if session.job is not None else None
    if job is not None and job["error"]:
        job["error"] = state.store.scrub(job["error"])
    return {"video": session.video.__dict__ if session.video else None, "job": job,
            "annotated": session.annotated_frames() if session.video else [],
            "propagated": session.propagated_frames()}


@router.get("/api/frame/{index}")
def frame(session: CurrentSession, index: int) -> FileResponse:
    return FileResponse(session.frame_path(index), media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/api/mask/{index}")
def mask(session: CurrentSession, index: int) -> Response:
    labels, kind = session.labels(index)
    return Response(np.ascontiguousarray(labels, np.uint8).tobytes(), media_type="application/octet-stream",
                    headers={"X-Mask-Kind": kind, "Cache-Control": "no-store"})


@router.put("/api/annotation/{index}")
async def put_annotation(request: Request, session: CurrentSession, index: int, width: int, height: int) -> dict:
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


@router.post("/api/annotation/{index}/import")
async def import_annotation(request: Request, session: CurrentSession, index: int, name: str = "mask.png") -> dict:
    session.frame_index(index)
    with _received(session, "mask.png", name) as png:
        await receive_file(request, png, PNG_LIMIT, f"{name}: a mask PNG over {PNG_LIMIT // 2**20} MB")
        await run_in_threadpool(session.import_annotation, index, png)
    return {"annotated": session.annotated_frames()}


@router.delete("/api/annotation/{index}")
def delete_annotation(session: CurrentSession, index: int) -> dict:
    session.clear_annotation(index)
    return {"annotated": session.annotated_frames()}


@router.post("/api/propagate")
def propagate(session: CurrentSession, state: State, body: JsonBody) -> dict:
    name, runtime = str(body.get("model") or DEFAULT_MODEL), str(body.get("runtime") or "eager")
    if runtime not in RUNTIMES:
        raise InputError(f"runtime {runtime!r}: choose {' or '.join(RUNTIMES)}")
    frame_index = _integer(body.get("frame", 0), "frame")
    direction = str(body.get("direction", "forward"))
    return start_job(session, state, ("semi", name, runtime), lambda: _load_model(name, "semi", runtime),
                     lambda segmenter: propagation_job(session, segmenter, frame_index, direction))


@router.post("/api/discover")
def discover(session: CurrentSession, state: State, body: JsonBody) -> dict:
    session.require_video()
    name = str(body.get("model") or DEFAULT_DISCOVER_MODEL)
    return start_job(session, state, ("unsupervised", name), lambda: _load_model(name, "unsupervised"),
                     lambda discoverer: discovery_job(session, discoverer))


def start_job(session: AppSession, state: AppState, key: tuple, load: Callable[[], object],
              make_job: Callable[[object], Job]) -> dict:
    """The runner helper: refuse while a job runs, load the model (cached by ``key``), start its job;
    under the session's start lock, so that a double click starts one job."""
    with session.start_lock:
        _refuse_if_running(session)
        session.job = make_job(state.models.get(key, load))
    return {"job": session.job.status.as_dict()}


@router.post("/api/stop")
def stop(session: CurrentSession) -> dict:
    _stop_job(session)
    return {"job": session.job.status.as_dict() if session.job else None}


DOWNLOADS = {"masks.zip": (AppSession.masks_zip, "application/zip"),
             "overlay.mp4": (AppSession.overlay_video, "video/mp4")}


@router.get("/api/download/{name}")
def download(request: Request, name: str) -> FileResponse:
    if name not in DOWNLOADS:
        raise InputError(f"{name}: nothing to download by that name (masks.zip or overlay.mp4)")
    session = current_session(request)
    _refuse_if_running(session)
    make, media_type = DOWNLOADS[name]
    path = make(session)
    return FileResponse(path, media_type=media_type, filename=path.name)


@router.post("/api/session/close")
def close_session(request: Request, state: State) -> dict:
    state.store.close(session_id_of(request) or "")
    return {"closed": True}


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
    (unsupervised ones), each with the models that can run here: weights shipped or none needed."""
    from vosuite.factory import list_models, ships_weights
    from vosuite.io.masks import davis_palette
    from vosuite.registry import MODELS

    menus: dict[str, list] = {"propagate": [], "discover": [], "default": DEFAULT_MODEL,
                              "discover_default": DEFAULT_DISCOVER_MODEL, "runtimes": list(RUNTIMES),
                              "palette": davis_palette().tolist()}
    for name in list_models():
        spec = MODELS[name]
        if spec.task not in ("semi", "unsupervised") or (spec.trained and not ships_weights(spec)):
            continue
        menus["propagate" if spec.task == "semi" else "discover"].append(
            {"name": name, "summary": spec.summary, "default": name in (DEFAULT_MODEL, DEFAULT_DISCOVER_MODEL)})
    return menus
