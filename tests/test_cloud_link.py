"""The Cloud API link against the contract fake of the Graph API, the fake itself, and secrets at rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server

import gevent
import gevent.event
import httpx
import pytest

from tests.fake_graph import FakeGraph, _QuietHandler, _ThreadingServer
from wafleet.actors.links.base import LinkConflict, SendError
from wafleet.actors.links.cloud import CloudConfig, CloudLink, TokenBucket, classify
from wafleet.storage.crypto import Cipher, DecryptionError, generate_key

PNID = "123456123"
TOKEN = "EAAG-secret-token-do-not-leak-1234567890"
FIXTURES = Path("/work/shared/fixtures/meta-cloud")


class Events:
    """Collects what a link emits; ``wait`` blocks on gevent so the link's greenlets run."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self._results: dict[str, gevent.event.AsyncResult] = {}

    def _result(self, kind: str) -> gevent.event.AsyncResult:
        return self._results.setdefault(kind, gevent.event.AsyncResult())

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.items.append((kind, data))
        self._result(kind).set(data)

    def wait(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        return self._result(kind).get(timeout=timeout)

    def kinds(self) -> list[str]:
        return [k for k, _ in self.items]


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    server = FakeGraph(tokens={PNID: TOKEN}, app_secret="test-app-secret").start()
    yield server
    server.stop()


def make_link(url: str, token: str = TOKEN, **config: Any) -> tuple[CloudLink, Events]:
    events = Events()
    cfg = CloudConfig(
        phone_number_id=PNID, access_token=token, base_url=url, version="v21.0", timeout=2.0, **config
    )
    return CloudLink("c1", events, cfg), events


@pytest.fixture
def link(fake: FakeGraph) -> Iterator[CloudLink]:
    link, events = make_link(fake.url)
    link.events = events  # type: ignore[attr-defined]
    link.start(None)
    events.wait("connected")
    yield link
    link.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_no_token(exc: BaseException) -> None:
    assert TOKEN not in str(exc)
    assert TOKEN not in repr(exc)
    assert TOKEN not in json.dumps(getattr(exc, "raw", {}))


# -- start ---------------------------------------------------------------------------------------
def test_good_token_connects_with_the_display_number(fake: FakeGraph) -> None:
    fake.display_numbers[PNID] = "+1 650-555-1111"
    link, events = make_link(fake.url)
    link.start(None)  # returns at once: the check runs in a greenlet
    assert events.items == []
    assert events.wait("connected") == {"phone": "16505551111", "creds": None}
    assert link.state == "connected"
    assert events.kinds() == ["connected"]
    link.stop()


def test_bad_token_closes_with_auth(fake: FakeGraph) -> None:
    link, events = make_link(fake.url, token="wrong-token")
    link.start(None)
    closed = events.wait("closed")
    assert closed["reason"] == "auth" and closed["code"] == 190
    assert "wrong-token" not in closed["message"]
    assert "connected" not in events.kinds()


def test_expired_token_closes_with_auth(fake: FakeGraph) -> None:
    fake.expire_token(PNID)
    link, events = make_link(fake.url)
    link.start(None)
    closed = events.wait("closed")
    assert closed["reason"] == "auth" and "Session has expired" in closed["message"]
    assert TOKEN not in closed["message"]


def test_fake_down_closes_transient() -> None:
    link, events = make_link(f"http://127.0.0.1:{free_port()}")
    link.start(None)
    closed = events.wait("closed")
    assert closed["reason"] == "transient"
    assert TOKEN not in closed["message"]


def test_graph_5xx_on_start_is_transient(fake: FakeGraph) -> None:
    link, events = make_link(fake.url)
    fake.app.route("/<version>/<pnid>", "GET", lambda version, pnid: fake._reply(503, "upstream down"))
    link.start(None)
    assert events.wait("closed")["reason"] == "transient"


def test_pair_is_refused_and_stop_cancels_the_check(fake: FakeGraph) -> None:
    link, events = make_link(fake.url)
    with pytest.raises(LinkConflict, match="no pairing codes"):
        link.pair("15551234567")
    link.start(None)
    check = link._check  # the greenlet that would check the number and report
    assert check is not None
    link.stop()  # before the greenlet ran
    check.join(timeout=5)  # it ended: killed, so it can never report anything
    assert check.dead and events.items == []
    with pytest.raises(SendError) as info:
        link.send("15551234567", "hi")
    assert info.value.retry_after and not info.value.final


# -- send ----------------------------------------------------------------------------------------
def test_send_posts_metas_exact_body_and_returns_the_wamid(fake: FakeGraph, link: CloudLink) -> None:
    wamid = link.send("16315551181", "hello")
    assert wamid.startswith("wamid.")
    assert fake.sent[-1]["id"] == wamid
    assert fake.sent[-1]["body"] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16315551181",
        "type": "text",
        "text": {"body": "hello", "preview_url": False},
    }


def test_throughput_limit_130429_is_retryable(fake: FakeGraph, link: CloudLink) -> None:
    fake.fail_next(130429, error_subcode=2494055)
    with pytest.raises(SendError) as info:
        link.send("16315551181", "hi")
    exc = info.value
    assert exc.code == 130429 and not exc.final and not exc.auth
    assert exc.retry_after is not None and exc.retry_after >= 1
    assert exc.raw["error"]["type"] == "OAuthException"
    assert_no_token(exc)
    assert link.send("16315551181", "hi again").startswith("wamid.")  # nothing held back


def test_fake_answers_130429_over_its_rate() -> None:
    with FakeGraph(tokens={PNID: TOKEN}, rate=5) as fake:
        link, events = make_link(fake.url, throughput=1000)
        link.start(None)
        events.wait("connected")
        codes = []
        for i in range(12):
            try:
                link.send(f"1555000{i:04d}", "burst")
                codes.append(None)
            except SendError as exc:
                codes.append(exc.code)
                assert exc.retry_after and not exc.final
        assert codes.count(130429) >= 5
        assert fake.requests[-1]["status"] == 400


def test_pair_limit_131056_holds_that_recipient_only(fake: FakeGraph, link: CloudLink) -> None:
    link.send("16315551181", "first")
    with pytest.raises(SendError) as info:
        link.send("16315551181", "second, too soon")
    exc = info.value
    assert exc.code == 131056 and not exc.final and exc.retry_after >= 6
    assert fake.requests[-1]["code"] == 131056
    # The link now refuses to try that recipient early, without asking Meta.
    asked = len(fake.requests)
    with pytest.raises(SendError) as again:
        link.send("16315551181", "third")
    assert again.value.code == 131056 and 5 < again.value.retry_after <= 6.01 and not again.value.final
    assert len(fake.requests) == asked
    # Another recipient still goes through.
    assert link.send("16505550000", "other").startswith("wamid.")


def test_pair_hold_lapses_with_time(fake: FakeGraph) -> None:
    now = [1000.0]
    events = Events()
    cfg = CloudConfig(phone_number_id=PNID, access_token=TOKEN, base_url=fake.url)
    link = CloudLink("c1", events, cfg, clock=lambda: now[0])
    link.start(None)
    events.wait("connected")
    fake.fail_next(131056)
    with pytest.raises(SendError):
        link.send("16315551181", "x")
    now[0] += 5.9
    with pytest.raises(SendError) as held:
        link.send("16315551181", "x")
    assert held.value.retry_after == pytest.approx(0.1, abs=0.01)
    now[0] += 0.2
    assert link.send("16315551181", "x").startswith("wamid.")
    link.stop()


def test_outside_24h_window_131047_is_final(fake: FakeGraph, link: CloudLink) -> None:
    fake.outside_window.add("16315551181")
    with pytest.raises(SendError) as info:
        link.send("16315551181", "too late")
    assert info.value.code == 131047 and info.value.final and not info.value.auth
    assert "24 hours" in str(info.value)


@pytest.mark.parametrize("code", [131026, 131008, 100])
def test_other_4xx_codes_are_final(fake: FakeGraph, link: CloudLink, code: int) -> None:
    fake.fail_next(code)
    with pytest.raises(SendError) as info:
        link.send("16315551181", "x")
    assert info.value.code == code and info.value.final


@pytest.mark.parametrize("code", [1, 2, 4, 80007, 131000, 131016])
def test_retryable_codes(fake: FakeGraph, link: CloudLink, code: int) -> None:
    fake.fail_next(code)
    with pytest.raises(SendError) as info:
        link.send("16315551181", "x")
    assert info.value.code == code and not info.value.final and info.value.retry_after >= 1


def test_bare_5xx_and_network_errors_are_retryable(fake: FakeGraph, link: CloudLink) -> None:
    fake.fail_next_raw(502, "<html>Bad Gateway</html>")
    with pytest.raises(SendError) as info:
        link.send("16315551181", "x")
    assert info.value.code is None and not info.value.final and info.value.retry_after
    fake.stop()
    with pytest.raises(SendError) as down:
        link.send("16315551181", "x")
    assert not down.value.final and down.value.retry_after
    assert_no_token(down.value)


def test_expired_token_on_send_is_auth_and_closes_the_link(fake: FakeGraph, link: CloudLink) -> None:
    fake.expire_token(PNID)
    with pytest.raises(SendError) as info:
        link.send("16315551181", "x")
    exc = info.value
    assert exc.code == 190 and exc.auth and not exc.final
    assert_no_token(exc)
    closed = link.events.wait("closed")  # type: ignore[attr-defined]
    assert closed["reason"] == "auth" and closed["code"] == 190
    assert link.state == "closed"


def test_classify_keys_on_the_code_not_the_http_status() -> None:
    assert classify(500, {"error": {"code": 131047, "message": "m"}}).final
    assert not classify(400, {"error": {"code": 131000, "message": "m"}}).final
    assert classify(429, {"error": {"code": 130429, "message": "m"}}).retry_after >= 1
    assert classify(400, {"error": {"code": 190, "message": "m"}}).auth
    assert classify(503, None).retry_after and not classify(503, None).final
    assert classify(418, "teapot").final


def test_token_never_in_errors_even_when_echoed(fake: FakeGraph, link: CloudLink) -> None:
    fake.fail_next(131009, message=f"(#131009) Parameter value is not valid: {TOKEN}")
    with pytest.raises(SendError) as info:
        link.send("16315551181", "x")
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(link) and TOKEN not in repr(link.config)


# -- throughput ----------------------------------------------------------------------------------
def test_token_bucket_with_a_fake_clock() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(80, clock=lambda: now[0], sleep=sleep)
    for _ in range(200):
        bucket.take()
    assert now[0] == pytest.approx(120 / 80, rel=0.01)  # 80 burst, then 80/s


def test_200_sends_at_80_per_second_take_about_1_5_s() -> None:
    with FakeGraph(tokens={PNID: TOKEN}, rate=10_000) as fake:
        link, events = make_link(fake.url)
        link.start(None)
        events.wait("connected")
        started = time.monotonic()
        for i in range(200):
            link.send(f"1555{i:07d}", "bulk")
        elapsed = time.monotonic() - started
        link.stop()
    assert len(fake.sent) == 200
    assert 1.45 <= elapsed < 10


# -- the fake's webhooks -------------------------------------------------------------------------
class Receiver:
    """A webhook endpoint that keeps the raw bodies and headers it got."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, dict[str, str]]] = []
        self._server = make_server(
            "127.0.0.1", 0, self._app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/whatsapp/webhook/cloud"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        self.got.append((body, headers))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_status_webhooks_are_signed_shaped_like_meta_out_of_order_and_twice(
    fake: FakeGraph, link: CloudLink
) -> None:
    wamid = link.send("16315551181", "hello")
    receiver = Receiver()
    try:
        assert fake.post_statuses(receiver.url, wamid, seed=1) == [200] * 6
    finally:
        receiver.close()
    fixture = json.loads((FIXTURES / "whatsapp-api-js__v25__sent.json").read_text())
    fx_value = fixture["entry"][0]["changes"][0]["value"]
    fx_status = fx_value["statuses"][0]
    seen = []
    for body, headers in receiver.got:
        expected = "sha256=" + hmac.new(b"test-app-secret", body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Hub-Signature-256"], expected)
        assert body.isascii()
        payload = json.loads(body)
        assert payload["object"] == fixture["object"]
        assert set(payload["entry"][0]) == set(fixture["entry"][0])
        change = payload["entry"][0]["changes"][0]
        assert change["field"] == "messages"
        value = change["value"]
        assert set(value) == set(fx_value)
        assert set(value["metadata"]) == set(fx_value["metadata"])
        assert value["metadata"]["phone_number_id"] == PNID
        (status,) = value["statuses"]
        assert {"id", "status", "timestamp", "recipient_id"} <= set(status) <= set(fx_status)
        assert status["id"] == wamid and status["recipient_id"] == "16315551181"
        assert status["timestamp"].isdigit()
        seen.append(status["status"])
    assert sorted(seen) == ["delivered", "delivered", "read", "read", "sent", "sent"]
    assert seen[0] != "sent"  # out of order


def test_webhook_shapes_match_each_fixture_status(fake: FakeGraph, link: CloudLink) -> None:
    wamid = link.send("16315551181", "hello")
    for status in ("sent", "delivered", "read"):
        fixture = json.loads((FIXTURES / f"whatsapp-api-js__v25__{status}.json").read_text())
        fx = fixture["entry"][0]["changes"][0]["value"]["statuses"][0]
        ours = fake.status_payload(wamid, [status])["entry"][0]["changes"][0]["value"]["statuses"][0]
        assert set(ours) <= set(fx), status
        assert set(fx) - set(ours) <= {"recipient_user_id", "parent_recipient_user_id"}, status
        for key in ("conversation", "pricing"):
            if key in ours:
                assert set(ours[key]) == set(fx[key]), (status, key)


def test_failed_status_for_a_closed_window_in_async_mode() -> None:
    with FakeGraph(tokens={PNID: TOKEN}, window_errors="async") as fake:
        fake.outside_window.add("16315551181")
        link, events = make_link(fake.url)
        link.start(None)
        events.wait("connected")
        wamid = link.send("16315551181", "too late")  # Meta accepts it, then fails it by webhook
        payload = fake.status_payload(wamid, ["failed"])
        (status,) = payload["entry"][0]["changes"][0]["value"]["statuses"]
        fixture = json.loads(
            (FIXTURES / "graph_api_responses/error_object_131047_reengagement_webhook_style.json").read_text()
        )
        assert status["errors"][0] == fixture
        link.stop()


def test_fake_error_bodies_have_metas_shape(fake: FakeGraph) -> None:
    url = f"{fake.url}/v21.0/{PNID}/messages"
    good = {"messaging_product": "whatsapp", "to": "1555", "type": "text", "text": {"body": "x"}}
    r = httpx.post(url, json=good, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["type"] == "OAuthException" and err["code"] == 190 and err["fbtrace_id"]
    r = httpx.post(url, json=good, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert set(r.json()) == {"messaging_product", "contacts", "messages"}
    r = httpx.post(url, json=good, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == 131056 and err["message"].startswith("(#131056)")
    assert set(err) == {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}
    assert set(err["error_data"]) == {"messaging_product", "details"}


# -- secrets at rest -----------------------------------------------------------------------------
def test_crypto_round_trip_and_fresh_nonces() -> None:
    cipher = Cipher.from_key(generate_key())
    a, b = cipher.encrypt(TOKEN, aad="company-1"), cipher.encrypt(TOKEN, aad="company-1")
    assert a != b and TOKEN not in a
    raw = base64.b64decode(a)
    assert raw[0] == 1 and len(raw) == 1 + 12 + len(TOKEN) + 16
    assert cipher.decrypt(a, aad="company-1") == TOKEN
    assert cipher.decrypt(cipher.encrypt("héllo ✓")) == "héllo ✓"


def test_crypto_tamper_wrong_key_and_aad_are_refused() -> None:
    key = generate_key()
    cipher = Cipher.from_key(key)
    token = cipher.encrypt("secret", aad="company-1")
    raw = bytearray(base64.b64decode(token))
    raw[20] ^= 1
    with pytest.raises(DecryptionError, match="altered"):
        cipher.decrypt(base64.b64encode(bytes(raw)).decode(), aad="company-1")
    with pytest.raises(DecryptionError):
        Cipher.from_key(generate_key()).decrypt(token, aad="company-1")
    with pytest.raises(DecryptionError, match="another record"):
        cipher.decrypt(token, aad="company-2")
    with pytest.raises(DecryptionError):
        cipher.decrypt(token)  # aad missing
    with pytest.raises(DecryptionError):
        cipher.decrypt("not base64!!")
    with pytest.raises(ValueError):
        cipher.decrypt(base64.b64encode(b"\x01short").decode())
    assert key not in repr(cipher)


@pytest.mark.parametrize("bad", [None, "", "not-base64!!", base64.b64encode(b"x" * 16).decode()])
def test_bad_key_names_the_env_var(bad: str | None) -> None:
    with pytest.raises(ValueError, match="WAFLEET_ENCRYPTION_KEY"):
        Cipher.from_key(bad)  # type: ignore[arg-type]


# -- the health monitor's ping --------------------------------------------------------------------
def test_ping_checks_the_number_only_at_its_slow_cadence(fake: FakeGraph) -> None:
    clock = [1000.0]
    events = Events()
    cfg = CloudConfig(
        phone_number_id=PNID, access_token=TOKEN, base_url=fake.url, timeout=2.0, check_every=600
    )
    link = CloudLink("c1", events, cfg, clock=lambda: clock[0])
    link.start(None)
    events.wait("connected")
    calls = len(fake.requests)
    assert link.ping().get(timeout=1) is True  # inside the cadence: answered without a call
    assert len(fake.requests) == calls
    fake.expire_token(PNID)
    assert link.ping().get(timeout=1) is True  # still inside it: the expiry is not seen yet
    clock[0] += 601
    assert link.ping().get(timeout=5) is False  # checked: Meta refuses the token
    assert events.wait("closed")["reason"] == "auth"
    link.stop()


def test_ping_of_an_unreachable_graph_api_never_answers() -> None:
    clock = [1000.0]
    events = Events()
    cfg = CloudConfig(
        phone_number_id=PNID,
        access_token=TOKEN,
        base_url=f"http://127.0.0.1:{free_port()}",
        timeout=0.5,
        check_every=0,
    )
    link = CloudLink("c1", events, cfg, clock=lambda: clock[0])
    link._state = "connected"  # as if its start had checked the number before the outage
    answer = link.ping()
    with pytest.raises(gevent.Timeout):
        answer.get(timeout=2.0)  # longer than the request's own timeout: it will not come
    assert "closed" not in events.kinds()  # silent: the monitor decides, not the link
    link.stop()
