"""/healthz (the process lives) and /readyz (it can do its job: database, tree, and every
company loaded by the boot)."""

from __future__ import annotations

from typing import Any, Literal

import bottle

from wafleet.http.api import respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, Content, declare
from wafleet.http.fields import Reply


class Alive(Reply):
    status: Literal["ok"]


class Boot(Reply):
    state: str
    loaded: int


class Readiness(Reply):
    status: Literal["ready", "not_ready"]
    database: str
    tree: str
    redis: str
    boot: Boot


def install(app: bottle.Bottle, ctx: Context) -> None:
    def healthz() -> Any:
        return respond(200, {"status": "ok"})

    def readyz() -> Any:
        checks: dict[str, str] = {}
        try:
            ctx.db.ping()
            checks["database"] = "ok"
        except Exception as exc:  # any driver error means not ready
            checks["database"] = f"down: {type(exc).__name__}"
        checks["tree"] = "running" if ctx.tree.running() else "down"
        boot = ctx.directory.boot.json()  # loading: not ready; restoring: ready, sessions coming back
        # Redis down is degraded, not unready: the node serves on local limits meanwhile.
        checks["redis"] = {"ok": "ok", "degraded": "degraded", "local": "not configured"}[ctx.shared.status()]
        ready = checks["database"] == "ok" and checks["tree"] == "running" and ctx.directory.loaded
        return respond(
            200 if ready else 503, {"status": "ready" if ready else "not_ready", **checks, "boot": boot}
        )

    declare(
        app, "GET", "/healthz", healthz, summary="Liveness: the process answers", tag="health",
        access=Access.PUBLIC, ok={200: Alive},
    )  # fmt: skip
    declare(
        app, "GET", "/readyz", readyz, summary="Readiness: database, tree and boot", tag="health",
        access=Access.PUBLIC,
        ok={200: Readiness, 503: Content(model=Readiness, description="Not ready (the body says why)")},
    )  # fmt: skip
