"""A small server-sent-events client for the tests: a thread parses the stream into a queue."""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Sse:
    id: int | None
    event: str
    data: dict[str, Any]


class SseClient:
    def __init__(
        self,
        base_url: str,
        path: str,
        token: str | None,
        last_event_id: int | None = None,
        cookies: dict[str, str] | None = None,
    ) -> None:
        headers = {"Accept": "text/event-stream"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.events: queue.Queue[Sse] = queue.Queue()
        self.comments: queue.Queue[str] = queue.Queue()
        self.status: int | None = None
        self._client = httpx.Client(
            base_url=base_url, timeout=httpx.Timeout(30.0, read=None), cookies=cookies or {}
        )
        self._ready = threading.Event()
        self.ended = threading.Event()  # the server ended the response
        self._closed = False
        self._thread = threading.Thread(target=self._run, args=(path, headers), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the stream did not open"

    def _run(self, path: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", path, headers=headers) as response:
                self.status = response.status_code
                self._ready.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line == "":
                        if "event" in fields:
                            self.events.put(
                                Sse(
                                    int(fields["id"]) if "id" in fields else None,
                                    fields["event"],
                                    json.loads(fields.get("data", "{}")),
                                )
                            )
                        fields = {}
                    elif line.startswith(":"):
                        self.comments.put(line)
                    else:
                        name, _, value = line.partition(":")
                        fields[name] = value.lstrip(" ")
            self.ended.set()
        except (httpx.HTTPError, RuntimeError):
            if not self._closed:
                raise
        finally:
            self._ready.set()

    def next(self, timeout: float = 10.0) -> Sse:
        return self.events.get(timeout=timeout)

    def until(self, predicate: Any, timeout: float = 10.0) -> list[Sse]:
        """Collect events until one matches; returns all collected, the match last."""
        seen = []
        while True:
            event = self.events.get(timeout=timeout)
            seen.append(event)
            if predicate(event):
                return seen

    def close(self) -> None:
        self._closed = True
        self._client.close()
