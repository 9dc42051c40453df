"""``vosuite app``: a local web app to open a video, draw the objects, follow them, correct and
download (:mod:`vosuite.app.server`; the page: ``static/``). The web stack is the optional
``vosuite[app]`` extra (FastAPI, uvicorn)."""

from __future__ import annotations

from pathlib import Path

from vosuite.errors import InputError

INSTALL_HINT = "pip install 'vosuite[app]' (or: pip install fastapi uvicorn)"


def require_web_stack() -> None:
    """An InputError saying how to install the web stack when FastAPI or uvicorn is missing."""
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(f"vosuite app needs {' and '.join(missing)}: {INSTALL_HINT}")


def serve(host: str = "127.0.0.1", port: int = 7860, work_dir: Path | None = None, max_upload_mb: float = 500.0,
          max_frames: int = 10_000, log_level: str = "warning") -> None:
    """Run the app until interrupted; its session folders are removed when it stops."""
    require_web_stack()
    import uvicorn

    from vosuite.app.server import create_app

    _check_port_free(host, port)
    app = create_app(work_dir, max_upload_mb=max_upload_mb, max_frames=max_frames, host=host)
    print(f"vosuite app: open http://{host}:{port}/ in a browser (Ctrl+C stops it)")
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        app.state.store.shutdown()  # also when uvicorn exits early: no session root left behind


def _check_port_free(host: str, port: int) -> None:
    """An InputError naming ``--port`` (or ``--host``) when the server could not listen there."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise InputError(f"--port {port} on --host {host}: cannot listen there ({error.strerror or error})") from None
