"""The process entry point and composition root: ``wafleet serve`` and ``wafleet migrate``.

The first lines patch the world for gevent, before anything else is imported:
patching late leaves blocking sockets behind, and psycopg2 needs its own wait callback.
"""

from gevent import monkey

monkey.patch_all()

from psycogreen.gevent import patch_psycopg  # noqa: E402

patch_psycopg()

import argparse  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import logging.handlers  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from importlib.metadata import PackageNotFoundError, version  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.pool import Pool  # noqa: E402

from wafleet.actors import messages as m  # noqa: E402
from wafleet.actors.alerts import AlertBoard, Limits  # noqa: E402
from wafleet.actors.assistant.config import DEMO as DEMO_ASSISTANT  # noqa: E402
from wafleet.actors.assistant.conversations import Conversations  # noqa: E402
from wafleet.actors.assistant.service import Assistant, AssistantSettings, LiveChild, build_model  # noqa: E402
from wafleet.actors.broadcast import Broadcaster  # noqa: E402
from wafleet.actors.directory import Directory  # noqa: E402
from wafleet.actors.errors import AlreadyExists, Unavailable  # noqa: E402
from wafleet.actors.figures import Figures  # noqa: E402
from wafleet.actors.fleet import FleetConfig  # noqa: E402
from wafleet.actors.gevent_actor import SupervisedActor  # noqa: E402
from wafleet.actors.health import HealthConfig, HealthMonitor  # noqa: E402
from wafleet.actors.journal import Journal  # noqa: E402
from wafleet.actors.linkhost import LinkHostPool  # noqa: E402
from wafleet.actors.links.cloud import CloudConfig  # noqa: E402
from wafleet.actors.links.factory import LinkFactory  # noqa: E402
from wafleet.actors.links.sandbox import SandboxTiming  # noqa: E402
from wafleet.actors.message_log import MessageLog  # noqa: E402
from wafleet.actors.metrics import Metrics  # noqa: E402
from wafleet.actors.outbound_url import UrlRefused, parse  # noqa: E402
from wafleet.actors.outbox import DelivererConfig, Wake  # noqa: E402
from wafleet.actors.process_stats import ProcessMeter  # noqa: E402
from wafleet.actors.recorder import MetricsRecorder, RecorderConfig  # noqa: E402
from wafleet.actors.restart import RestartPolicy  # noqa: E402
from wafleet.actors.session import ConnectLimits, SessionDeps  # noqa: E402
from wafleet.actors.supervisor import ChildSpec  # noqa: E402
from wafleet.actors.tree import Tree  # noqa: E402
from wafleet.actors.webhook import InboxProcessor  # noqa: E402
from wafleet.actors.webhook_deliverer import WebhookConfig, WebhookDeliverer  # noqa: E402
from wafleet.http.app import build_app  # noqa: E402
from wafleet.http.auth import Authenticator, AuthLimits  # noqa: E402
from wafleet.http.context import Context  # noqa: E402
from wafleet.http.demo import demo_admin_token  # noqa: E402
from wafleet.http.listen import ListenError, listen  # noqa: E402
from wafleet.http.server import NoDelayWSGIServer, Timeouts, handler_with  # noqa: E402
from wafleet.http.settings import ConfigError, Outbound, Settings, load  # noqa: E402
from wafleet.storage import companies, endpoints, rotation  # noqa: E402
from wafleet.storage.authstate import AuthStore  # noqa: E402
from wafleet.storage.blocklist import Blocklist  # noqa: E402
from wafleet.storage.crypto import Cipher, TextSeal  # noqa: E402
from wafleet.storage.database import Database, DatabaseUrlError  # noqa: E402
from wafleet.storage.journal_writer import JournalWriter  # noqa: E402
from wafleet.storage.phone_vault import vault_for  # noqa: E402
from wafleet.storage.schema import migrate  # noqa: E402
from wafleet.storage.shared_state import SharedState  # noqa: E402

log = logging.getLogger("wafleet")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wafleet", description="WhatsApp sessions of many companies")
    parser.add_argument("--version", action="version", version=f"wafleet {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the node: HTTP API and the supervision tree")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="sandbox link on; without WAFLEET_ADMIN_TOKEN, make an admin token (kept in the data folder)",
    )
    sub.add_parser("migrate", help="create or upgrade the database schema")
    sub.add_parser("linkhost", help="a WhatsApp Web link-host worker (JSON lines on stdin/stdout)")
    rotate_cmd = sub.add_parser(
        "rotate-keys",
        help="re-encrypt every stored secret and message text under the newest WAFLEET_ENCRYPTION_KEY",
    )
    rotate_cmd.add_argument("--batch", type=int, default=500, help="rows per transaction (default 500)")
    rotate_cmd.add_argument(
        "--pause", type=int, default=0, help="milliseconds to wait between batches, to spare a live node"
    )
    args = parser.parse_args(argv)
    if args.command == "linkhost":
        # The worker must run without gevent (neonize blocks in C): a fresh interpreter, not
        # this monkey-patched one.
        os.execv(sys.executable, [sys.executable, "-m", "wafleet.actors.linkhost_worker"])

    try:
        settings = load(os.environ, demo=getattr(args, "demo", False))
    except ConfigError as exc:
        print(f"wafleet: {exc}", file=sys.stderr)
        sys.exit(2)
    listener = None
    if args.command == "serve":
        try:  # before anything else is printed: a busy port is one line, not a token and a traceback
            listener = listen(settings.host, settings.port)
        except ListenError as exc:
            print(f"wafleet: {exc}", file=sys.stderr)
            sys.exit(1)
    try:
        _setup_logging(settings)
    except OSError as exc:
        print(
            f"wafleet: WHATSAPP_LOG_PATH: cannot write {settings.guide.log_path!r} ({exc})", file=sys.stderr
        )
        sys.exit(2)
    try:
        db = Database(settings.database_url)
    except DatabaseUrlError as exc:
        print(f"wafleet: DATABASE_URL: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        before, after = migrate(db)
    except Exception as exc:
        print(f"wafleet: cannot prepare the database at {db.description}: {exc}", file=sys.stderr)
        sys.exit(1)
    if args.command == "migrate":
        print(f"schema at version {after} (was {before}) in {db.description}")
        return
    if args.command == "rotate-keys":
        sys.exit(rotate_keys(settings, db, batch=max(1, args.batch), pause=max(0, args.pause) / 1000))
    assert listener is not None
    gc.set_threshold(*GC_THRESHOLDS)
    sys.exit(serve_node(settings, db, demo=args.demo, listener=listener))


# The collector's thresholds for a serving node (CPython's default is 700, 10, 10). A node holds
# many medium-lived objects (sessions, conversations, pooled connections): collected young every
# 700 allocations they survived into the old generation, and full collections of it stopped the
# hub for 100-300 ms. Rarer young collections let most of them die young; a full one is
# considered 10x less often. bench_assistant on a quiet machine: pauses over 10 ms 31 -> 20, the
# longest 314 -> 78 ms; p99 of a model turn at 100/s 630 -> 348 ms, of a rules turn at 200/s
# 38-58 -> 28 ms. Boot freezes what it loaded (actors/boot.py), so full ones skip it.
GC_THRESHOLDS = (50_000, 20, 100)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# WHATSAPP_DEBUG_SESSIONS and WHATSAPP_DEBUG_BAILEYS: the loggers each one turns to debug.
DEBUG_SESSIONS = ("wafleet.actors.session", "wafleet.actors.fleet", "wafleet.actors.journal")
DEBUG_WEB_LINK = ("wafleet.actors.links.web", "wafleet.actors.linkhost")


def _setup_logging(settings: Settings) -> None:
    """stderr always (supervisord keeps it); with WHATSAPP_LOG_TO_FILE also WHATSAPP_LOG_PATH,
    through a handler that reopens the file when logrotate moves it away."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    guide = settings.guide
    if guide.log_to_file:
        folder = os.path.dirname(os.path.abspath(guide.log_path))
        os.makedirs(folder, exist_ok=True)
        handlers.append(logging.handlers.WatchedFileHandler(guide.log_path, encoding="utf-8"))
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT, handlers=handlers)
    logging.getLogger("pykka").setLevel(logging.CRITICAL)  # our actors log their own failures
    # httpx logs every request at INFO: a line per webhook delivery, with its URL.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    for enabled, names in ((guide.debug_sessions, DEBUG_SESSIONS), (guide.debug_baileys, DEBUG_WEB_LINK)):
        if enabled:
            for name in names:
                logging.getLogger(name).setLevel(logging.DEBUG)


def rotate_keys(settings: Settings, db: Database, *, batch: int, pause: float) -> int:
    """``wafleet rotate-keys``: prints what it did per column; 0 when everything is under the
    newest key, 1 when some values open with no listed key, 130 when interrupted."""
    if not settings.encryption_key:
        print("wafleet: WAFLEET_ENCRYPTION_KEY: required to rotate keys (newest key first)", file=sys.stderr)
        return 2
    cipher = Cipher.from_key(settings.encryption_key)
    print(
        f"re-encrypting under the newest of {cipher.key_count} key(s) in {db.description}"
        + (" (plain message texts are sealed too)" if settings.encrypt_messages else ""),
        flush=True,
    )

    def progress(name: str, counts: rotation.Counts) -> None:
        log.info("%s", counts.line(name))

    report = rotation.rotate(
        db, cipher, seal_texts=settings.encrypt_messages, batch=batch, pause=pause, progress=progress
    )
    for name, counts in report.columns.items():
        print(counts.line(name), flush=True)
    if report.interrupted:
        print("interrupted: nothing half-done is kept; run wafleet rotate-keys again to finish", flush=True)
        return 130
    if report.failed:
        print(
            f"{report.failed} value(s) open with no listed key: keep every key they may need in "
            "WAFLEET_ENCRYPTION_KEY and run again",
            flush=True,
        )
        return 1
    print("done: every encrypted value is under the newest key", flush=True)
    return 0


def _version() -> str:
    try:
        return version("wafleet")
    except PackageNotFoundError:
        return "unknown (not installed)"


def serve_node(settings: Settings, db: Database, *, demo: bool, listener: socket.socket) -> int:
    admin_token = settings.admin_token
    if admin_token is None:
        if not demo:
            print(
                "wafleet: WAFLEET_ADMIN_TOKEN: required (at least 16 characters), or run with --demo",
                file=sys.stderr,
            )
            return 2
        admin_token, _ = demo_admin_token(settings.data_dir)
        print(f"demo admin token (set WAFLEET_ADMIN_TOKEN to choose your own): {admin_token}", flush=True)

    outbound = settings.outbound
    assert outbound is not None
    if outbound.alert_webhook is not None:
        try:
            parse(outbound.alert_webhook, outbound.allow_private)
        except UrlRefused as exc:
            print(f"wafleet: WHATSAPP_ALERT_WEBHOOK: {exc}", file=sys.stderr)
            return 2
    endpoints.sync_alert_endpoint(db, outbound.alert_webhook)

    metrics = Metrics(
        settings.statsd_host,
        settings.statsd_port,
        settings.statsd_prefix,
        Figures(window=settings.metrics_window_ms / 1000),
    )
    alerts = AlertBoard()
    process = ProcessMeter()
    broadcaster = Broadcaster()
    shared = SharedState(settings.redis_url)
    gevent.spawn(_sweep_forever, shared, settings)
    directory = Directory()
    cipher = Cipher.from_key(settings.encryption_key) if settings.encryption_key else None
    db.text_seal = TextSeal(cipher, settings.encrypt_messages)

    def cloud_config(company_id: str) -> CloudConfig | None:
        """Read and decrypt at the moment a session starts; the token lives only in its link."""
        columns = companies.cloud_columns(db, company_id)
        if cipher is None or columns is None or not columns["token"]:
            return None
        return CloudConfig(
            phone_number_id=columns["phone_number_id"],
            access_token=cipher.decrypt(columns["token"], aad=company_id),
            base_url=settings.graph_url,
            version=settings.graph_version,
            throughput=settings.cloud_throughput,
            connect_timeout=settings.connection_timeout_ms / 1000,
            keepalive=settings.guide.keepalive_interval_ms / 1000,
            check_every=settings.cloud_check_interval_ms / 1000,
        )

    links = LinkFactory(
        cloud=cloud_config if cipher is not None else None,
        web_store_dir=os.path.join(settings.data_dir, "sessions") if settings.web_link else None,
        sandbox=settings.sandbox,
        sandbox_timing=SandboxTiming(
            qr_first=settings.qr_first_ms / 1000, qr_next=settings.qr_next_ms / 1000
        ),
    )
    journal = Journal(
        db,
        metrics,
        broadcaster,
        JournalWriter(db, max_batch=settings.journal_batch),
        strict=settings.strict_transitions,
    )
    blocklist = Blocklist(
        db, settings.send_limits.blocked_numbers, max_per_company=settings.send_limits.blocklist_max
    )
    try:
        model = build_model(os.environ)
    except ValueError as exc:  # ModelSettingsError: names the variable
        print(f"wafleet: {exc}", file=sys.stderr)
        return 2
    assistant = Assistant(
        journal,
        vault_for(settings.encryption_key, settings.data_dir),
        AssistantSettings(
            batch_window_ms=settings.batch_window_ms,
            handoff_minutes=settings.handoff_minutes,
            idle_ms=settings.conversation_idle_ms,
            complete_every_ms=settings.booking_complete_every_ms,
        ),
        model=model,
    )
    message_log = MessageLog(journal, on_stored=assistant.customer_message, blocklist=blocklist)
    deps = SessionDeps(
        journal=journal,
        auth=AuthStore(os.path.join(settings.data_dir, "sessions")),
        links=links,
        metrics=metrics,
        shared=shared,
        limits=ConnectLimits(
            max_qr_attempts=settings.max_qr_attempts,
            pairing_per_hour=settings.max_pairing_per_hour,
            pairing_cooldown=settings.pairing_cooldown_ms / 1000,
            qr_count_ttl=(settings.qr_first_ms + settings.qr_next_ms * settings.max_qr_attempts) / 1000 + 60,
        ),
        inbound=message_log.inbound,
        receipt=message_log.receipt,
    )
    policy = RestartPolicy(
        base=settings.reconnect_delay_ms / 1000,
        max_delay=settings.reconnect_max_delay_ms / 1000,
        max_restarts=settings.max_reconnect_attempts,
        window=settings.restart_window_ms / 1000,
        reset_after=settings.restart_reset_after_ms / 1000,
    )
    state = {"exit_code": 0}
    server: NoDelayWSGIServer | None = None
    trees: list[Tree] = []  # the tree, once built: the health monitor reaches the Fleet through it

    def fleet() -> Any:
        if not trees:
            raise Unavailable("the tree is starting")
        return trees[0].fleet()

    def give_up(reason: str) -> None:
        # Jittered: a fleet of nodes that lost the same database must not all restart at once.
        delay = random.uniform(1.0, 5.0)
        log.critical("node gives up (%s); exiting in %.1fs for supervisord to restart it", reason, delay)
        state["exit_code"] = 1
        gevent.spawn_later(delay, lambda: server.stop(timeout=5) if server else None)

    tree = Tree(
        db=db,
        directory=directory,
        deps=deps,
        fleet_config=FleetConfig(
            policy=policy,
            max_sessions=settings.max_sessions,
            boot_rate=settings.boot_rate,
            replaced_cooloff=settings.replaced_cooloff_ms / 1000,
        ),
        root_policy=RestartPolicy(base=1.0, max_delay=30.0, max_restarts=3, window=60.0, reset_after=60.0),
        on_give_up=give_up,
        on_sent=message_log.sent,
        deliverer_config=DelivererConfig(
            concurrency=settings.send_concurrency, quantum=settings.send_quantum
        ),
        hosts=[
            # WhatsApp Web: neonize clients live in link-host worker processes (neonize blocks
            # in C for a session's life: it cannot run inside the gevent process).
            _child(
                "linkhosts",
                LinkHostPool,
                LinkHostPool.budget(LINK_HOST_STOP),
                settings.web_sessions_per_host,
                policy=policy,
                stop_timeout=LINK_HOST_STOP,
            )
        ]
        if links.web_store_dir
        else [],
        extra_children=[
            # Outbound deliveries: company webhooks, the alert webhook, pairing-code emails.
            _child(
                "webhooks",
                WebhookDeliverer,
                2.0,
                db=db,
                metrics=metrics,
                cipher=cipher,
                config=_webhooks(outbound),
            ),
            # Cloud API webhooks: drains what a crash left in the inbox, then every committed payload.
            _child(
                "inbox",
                InboxProcessor,
                2.0,
                db,
                message_log.announce,
                metrics,
                status_hold_ms=settings.webhook_status_hold_ms,
                busy_share=settings.webhook_busy_share / 100,
                burst_backlog=settings.webhook_burst_backlog,
            ),
            # The assistant: one temporary actor per active customer chat; they stop together,
            # each within 5 s.
            _child("assistant", Conversations, 6.0, assistant),
            # Zombies and stuck starts: probes every session's link, has the Fleet reconnect them.
            _child(
                "health",
                HealthMonitor,
                2.0,
                directory=directory,
                fleet=fleet,
                metrics=metrics,
                config=_health(settings),
            ),
            # The per-minute timeseries and the threshold alerts.
            _child(
                "recorder",
                MetricsRecorder,
                3.0,
                journal=journal,
                directory=directory,
                board=alerts,
                process=process,
                config=_recorder(settings),
            ),
        ],
    )
    trees.append(tree)
    links.web_pool = lambda: tree.child("linkhosts")
    assistant.conversations = LiveChild(lambda: tree.child("assistant"))
    deliverer = LiveChild(lambda: tree.child("deliverer"))
    assistant.wake_deliverer = lambda company_id: deliverer.tell(Wake(company_id))
    if not settings.multi_tenant:
        _ensure_default_company(settings, tree, links)
    if demo:
        _ensure_demo_salon(tree, assistant)

    ctx = Context(
        settings=settings,
        db=db,
        tree=tree,
        directory=directory,
        auth=Authenticator(
            admin_token,
            directory,
            db,
            shared,
            AuthLimits(
                failures=settings.auth_failure_limit,
                window_ms=settings.auth_failure_window_ms,
                session_ttl_ms=settings.page_session_ttl_ms,
            ),
        ),
        links=links,
        broadcaster=broadcaster,
        shared=shared,
        cipher=cipher,
        blocklist=blocklist,
        metrics=metrics,
        alerts=alerts,
        process=process,
        assistant=assistant,
    )
    app = build_app(ctx, metrics)
    timeouts = Timeouts(
        header=settings.http_header_timeout_ms / 1000,
        body=settings.http_body_timeout_ms / 1000,
        idle=settings.http_idle_timeout_ms / 1000,
    )
    server = NoDelayWSGIServer(
        listener, app, spawn=Pool(settings.http_pool), log=None, handler_class=handler_with(timeouts)
    )
    server.init_socket()
    host, port = server.socket.getsockname()[:2]
    print(f"wafleet listening on http://{host}:{port} (database {db.description})", flush=True)

    def stop(signum: int) -> None:
        log.info("signal %d: stopping (finishing requests, then the tree)", signum)
        broadcaster.close_all()
        server.stop(timeout=5)

    gevent.signal_handler(signal.SIGTERM, stop, signal.SIGTERM)
    gevent.signal_handler(signal.SIGINT, stop, signal.SIGINT)
    server.serve_forever()
    # Back in the main greenlet: the HTTP side is drained; now stop the tree top-down.
    tree.shutdown()
    metrics.flush()  # the last counters of the stop itself
    journal.writer.close()
    db.close()
    log.info("stopped (exit %d)", state["exit_code"])
    return state["exit_code"]


LINK_HOST_STOP = 3.0  # seconds a link host's worker has to stop its clients before SIGKILL


def _child(name: str, actor: type[SupervisedActor], shutdown: float, *args: Any, **kwargs: Any) -> ChildSpec:
    """One of the Root's children: ``actor`` started with these arguments and the callback that
    reports its exit; ``shutdown``: the seconds it has to stop, its own children included."""
    return ChildSpec(name, lambda on_exit: actor.start(*args, on_exit=on_exit, **kwargs), shutdown=shutdown)


def _webhooks(outbound: Outbound) -> WebhookConfig:
    return WebhookConfig(
        timeout=outbound.timeout_ms / 1000,
        retry_base=outbound.retry_base_ms / 1000,
        retry_max=outbound.retry_max_ms / 1000,
        retry_budget_ms=outbound.retry_budget_ms,
        concurrency=outbound.concurrency,
        poll=outbound.poll_ms / 1000,
        allow_private=outbound.allow_private,
        alert_secret=outbound.alert_secret,
        smtp_url=outbound.smtp_url,
        smtp_from=outbound.smtp_from,
        keep_ms=outbound.keep_ms,
    )


def _health(settings: Settings) -> HealthConfig:
    return HealthConfig(
        interval=settings.health_check_interval_ms / 1000,
        connection_timeout=settings.connection_timeout_ms / 1000,
        probe_timeout=settings.health_probe_timeout_ms / 1000,
        concurrency=settings.health_concurrency,
    )


def _recorder(settings: Settings) -> RecorderConfig:
    return RecorderConfig(
        interval=settings.metrics_interval_ms / 1000,
        limits=Limits(
            error_rate=settings.alert_error_rate,
            disconnect_rate=settings.alert_disconnect_rate,
            memory_mb=settings.alert_memory_mb,
        ),
    )


def _sweep_forever(shared: SharedState, settings: Settings) -> None:
    """WHATSAPP_CLEANUP_INTERVAL: what the node keeps in memory for idle companies (expired
    limits, counters, cached state) is dropped, not kept until the process ends."""
    keep = max(3600.0, settings.send_limits.rate_window_ms / 1000)  # the longest limit window
    while True:
        gevent.sleep(settings.guide.cleanup_interval_ms / 1000)
        try:
            dropped = shared.local.sweep(keep)
        except Exception:
            log.exception("memory cleanup failed; trying again at the next interval")
            continue
        if dropped:
            log.debug("cleanup: %d idle in-memory entries dropped", dropped)


def _ensure_default_company(settings: Settings, tree: Tree, links: LinkFactory) -> None:
    """Single-tenant mode: routes without an id act on DEFAULT_COMPANY_ID (created if missing)."""
    company_id = settings.default_company_id
    available = links.available()
    provider = settings.guide.provider
    link = provider if provider in available else (available or ["sandbox"])[0]
    try:
        tree.call(m.CreateCompany(company_id, company_id, None, link))
        log.info("single-tenant mode: created company %s", company_id)
    except AlreadyExists:
        pass


DEMO_COMPANY = "salon-demo"


def _ensure_demo_salon(tree: Tree, assistant: Assistant) -> None:
    """``serve --demo``: a ready salon on the sandbox link, its assistant configured (services
    named in Russian, Portuguese and English). Its token is the admin's: the demo has one user."""
    try:
        tree.call(m.CreateCompany(DEMO_COMPANY, "Salon Demo", None, "sandbox"))
        log.info("demo: created company %s", DEMO_COMPANY)
    except AlreadyExists:
        pass
    if assistant.config(DEMO_COMPANY) is None:
        assistant.put_config(DEMO_COMPANY, DEMO_ASSISTANT)
    gevent.spawn(_connect_demo_salon, tree)


def _connect_demo_salon(tree: Tree) -> None:
    """Scan the demo salon's first QR code (the sandbox's phone), unless it is connected already
    or reconnects with its stored login."""
    record = tree.directory.get(DEMO_COMPANY)
    if record is None or record.desired == "running":
        return
    try:
        tree.call(m.Initialize(DEMO_COMPANY))
        for _ in range(200):
            if record.status == "qr":
                tree.call(m.Sandbox(DEMO_COMPANY, "scan", {"phone": "351210000000"}))
                return
            gevent.sleep(0.05)
    except Exception as exc:  # the demo still runs; the walk-through's initialize/scan work by hand
        log.warning("demo: could not connect %s: %s", DEMO_COMPANY, exc)


if __name__ == "__main__":
    main()
