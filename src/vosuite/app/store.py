"""The server's shared state: the live sessions and the last few loaded models."""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

from vosuite.app.session import AppSession


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
