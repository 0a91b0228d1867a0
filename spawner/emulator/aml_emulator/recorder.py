"""``--record-responses FILE``: every ARM response the emulator sends, as JSON
lines (method, path, query, status, headers, body), for tests that check
each against Azure's published definitions. Off unless the flag is given.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from aiohttp import web


def record_of(request: web.Request, response: web.StreamResponse) -> dict:
    """One response as a JSON-able record; a body that is not JSON is kept as text."""
    raw = getattr(response, "body", None)
    body = None
    if isinstance(raw, (bytes, bytearray)) and raw:
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = text
    return {
        "method": request.method,
        "path": request.path,
        "query": request.query_string,
        "status": response.status,
        "headers": dict(response.headers),
        "body": body,
    }


class ResponseRecorder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        line = json.dumps(record) + "\n"
        # one write per line, appended: a reader never sees half a record it could take for a whole one
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)


def recording_middleware(recorder: ResponseRecorder):
    """Outermost, so it records the headers every other middleware added."""

    @web.middleware
    async def middleware(request, handler):
        response = await handler(request)
        if request.path.startswith("/subscriptions/"):
            recorder.write(record_of(request, response))
        return response

    return middleware
