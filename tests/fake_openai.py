"""A contract fake of OpenAI's Chat Completions API, for tests and the benchmark.

A real HTTP server on loopback; the code under test is the real `openai` client pointed at it with
OPENAI_BASE_URL. It CHECKS every request the way the real API would, and what our contract needs:

* `Authorization: Bearer <key>` (else 401 `invalid_api_key`, the real error body);
* a model it serves (else 404 `model_not_found`), and no temperature but the default for reasoning
  models (o1, o3, o4, gpt-5: else 400 `unsupported_value`);
* `response_format` = `{"type": "json_schema", "json_schema": {name, strict: true, schema}}` with a
  schema the real API accepts in strict mode: every object `additionalProperties: false` and every
  property required (else 400 `invalid_request_error`, param `response_format`);
* a system message holding today's date (YYYY-MM-DD) in the expected timezone and that timezone's
  name (else 400, so the test sees the violation as a failed call too).

Each check that fails is also recorded in `violations`: a test asserts it stays empty.

Answers come from a queue of scripted outcomes (`push`), else from `responder(request) -> outcome`,
else a fixed "other" answer. Outcomes: `reply(...)` (content as JSON), `refusal()`, `invalid_json()`,
`status(429|500|503)` with the real error bodies, `drop()` (the connection closes without an answer)
and any of them `after` a delay (to outlive the client's timeout). Requests are recorded
(`requests`), with the largest number in flight at once (`max_in_flight`).

    fake = FakeOpenAI(api_key="sk-test", timezone="Europe/Moscow", today="2026-12-01").start()
    fake.push(reply(intent="booking", service="haircut", date="2026-12-02", time="14:00"))
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.url}
    ...
    fake.stop()
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

RATE_LIMIT_BODY = {
    "error": {
        "message": (
            "Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): Limit 3, "
            "Used 3, Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits "
            "to learn more."
        ),
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
QUOTA_BODY = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
SERVER_ERROR_BODY = {
    "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
OVERLOADED_BODY = {
    "error": {
        "message": "The engine is currently overloaded, please try again later.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
BODIES = {429: RATE_LIMIT_BODY, 500: SERVER_ERROR_BODY, 503: OVERLOADED_BODY}


@dataclass
class Outcome:
    kind: str  # reply | refusal | invalid_json | status | drop
    content: str | None = None
    status: int = 200
    delay: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"

    def after(self, seconds: float) -> Outcome:
        """The same outcome, answered only after `seconds` (a slow model)."""
        return Outcome(**{**self.__dict__, "delay": seconds})


def reply(
    intent: str = "other",
    *,
    language: str = "en",
    service: str | None = None,
    date: str | None = None,
    time: str | None = None,
    resource: str | None = None,
    code: str | None = None,
    choice: int | None = None,
    confidence: float = 0.95,
    reply: str | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    **extra: Any,
) -> Outcome:
    """A well-formed structured answer (extra keys are added as they are, to break the schema)."""
    body = {
        "intent": intent,
        "language": language,
        "service": service,
        "date": date,
        "time": time,
        "resource": resource,
        "code": code,
        "choice": choice,
        "confidence": confidence,
        "reply": reply,
        **extra,
    }
    return Outcome("reply", json.dumps(body, ensure_ascii=False), 200, 0.0, prompt_tokens, completion_tokens)


def refusal() -> Outcome:
    return Outcome("refusal")


def invalid_json() -> Outcome:
    return Outcome("reply", '{"intent": "booking", "service": ')


def status(code: int, quota: bool = False) -> Outcome:
    """An error answer with the real body: 429 (rate limit, or with `quota` the billing quota), 500, 503."""
    return Outcome("status", content="quota" if quota else None, status=code)


def drop() -> Outcome:
    return Outcome("drop")


def _strict_schema_problems(schema: Any, path: str = "schema") -> list[str]:
    """What the real API refuses in a strict schema: open objects and optional properties."""
    problems: list[str] = []
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            if schema.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties must be false")
            props = set(schema.get("properties", {}))
            if set(schema.get("required", [])) != props:
                problems.append(f"{path}: every property must be required")
        for key, value in schema.items():
            problems += _strict_schema_problems(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            problems += _strict_schema_problems(value, f"{path}[{i}]")
    return problems


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer listens with a backlog of 5: a burst of connections from a node under
    load (a benchmark's hundreds of concurrent calls) was refused or reset, and the node fell back
    to the rules for calls the real API would have answered."""

    request_queue_size = 1024
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        """Headers and body go out in two writes: without TCP_NODELAY the body waited for the
        client's delayed ACK, 40 ms on every call that the real API does not add (measured: the
        benchmark's median model turn took 348 ms against a 300 ms fake)."""
        conn, address = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address


@dataclass
class FakeOpenAI:
    api_key: str = "sk-test-fake"
    models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o")
    timezone: str | None = None  # expected in the system prompt, with today's date there
    today: str | None = None  # YYYY-MM-DD; default: today in `timezone` by the clock
    responder: Callable[[dict], Outcome] | None = None
    delay: float = 0.0  # added to every answer
    requests: list[dict] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._queue: deque[Outcome] = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._server: ThreadingHTTPServer | None = None

    # -- scripting -------------------------------------------------------------------------
    def push(self, *outcomes: Outcome) -> FakeOpenAI:
        with self._lock:
            self._queue.extend(outcomes)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- checks ----------------------------------------------------------------------------
    def _check(self, headers: dict[str, str], body: dict) -> tuple[int, dict] | None:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {
                "error": {
                    "message": "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            }
        if body.get("model") not in self.models:
            return 404, {
                "error": {
                    "message": f"The model `{body.get('model')}` does not exist or you do not have access to it.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "model_not_found",
                }
            }
        if body["model"].startswith(("o1", "o3", "o4", "gpt-5")) and body.get("temperature", 1) != 1:
            return 400, {
                "error": {
                    "message": f"Unsupported value: 'temperature' does not support {body['temperature']} with this "
                    "model. Only the default (1) value is supported.",
                    "type": "invalid_request_error",
                    "param": "temperature",
                    "code": "unsupported_value",
                }
            }
        problems = []
        fmt = body.get("response_format") or {}
        schema_spec = fmt.get("json_schema") or {}
        if fmt.get("type") != "json_schema":
            problems.append("response_format.type must be json_schema")
        if schema_spec.get("strict") is not True:
            problems.append("response_format.json_schema.strict must be true")
        if not schema_spec.get("name"):
            problems.append("response_format.json_schema.name is required")
        problems += _strict_schema_problems(schema_spec.get("schema"))
        messages = body.get("messages") or []
        system = messages[0].get("content", "") if messages and messages[0].get("role") == "system" else ""
        if self.timezone:
            today = self.today or dt.datetime.now(ZoneInfo(self.timezone)).date().isoformat()
            if today not in system:
                problems.append(f"system prompt lacks today's date {today}")
            if self.timezone not in system:
                problems.append(f"system prompt lacks the timezone {self.timezone}")
        if problems:
            with self._lock:
                self.violations.extend(problems)
            return 400, {
                "error": {
                    "message": "Invalid request: " + "; ".join(problems),
                    "type": "invalid_request_error",
                    "param": "response_format",
                    "code": None,
                }
            }
        return None

    def _outcome(self, body: dict) -> Outcome:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            return self.responder(body)
        return reply("other", confidence=0.9, reply="Hello!")

    def _completion(self, body: dict, outcome: Outcome) -> dict:
        content = outcome.content if outcome.kind == "reply" else None
        refusal_text = "I'm sorry, I can't assist with that request." if outcome.kind == "refusal" else None
        prompt = outcome.prompt_tokens
        if prompt is None:
            prompt = len(json.dumps(body.get("messages", []), ensure_ascii=False)) // 4
        completion = outcome.completion_tokens
        if completion is None:
            completion = len(content or refusal_text or "") // 4
        return {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"] + "-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": refusal_text,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": outcome.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    # -- server ----------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, payload: dict, extra: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("x-request-id", "req_" + secrets.token_hex(16))
                self.send_header("openai-processing-ms", "42")
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout): nothing to answer

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(
                        404,
                        {"error": {"message": f"Unknown path {self.path}", "type": "invalid_request_error"}},
                    )
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(
                        400, {"error": {"message": "We could not parse the JSON body of your request."}}
                    )
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.requests.append({"headers": headers, "body": body})
                    fake._in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
                try:
                    refused = fake._check(headers, body)
                    if refused:
                        self._send(*refused)
                        return
                    outcome = fake._outcome(body)
                    if fake.delay or outcome.delay:
                        time.sleep(fake.delay + outcome.delay)
                    if outcome.kind == "drop":
                        self.close_connection = True
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        return
                    if outcome.kind == "status":
                        extra = {"retry-after": "20", "x-ratelimit-remaining-requests": "0"}
                        error = QUOTA_BODY if outcome.content == "quota" else BODIES[outcome.status]
                        self._send(outcome.status, error, extra if outcome.status == 429 else None)
                        return
                    self._send(200, fake._completion(body, outcome))
                finally:
                    with fake._lock:
                        fake._in_flight -= 1

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
