"""/healthz (the process lives) and /readyz (it can do its job: database, tree, and every
company loaded by the boot)."""

from __future__ import annotations

from typing import Any

import bottle

from wafleet.http.api import respond
from wafleet.http.context import Context


def install(app: bottle.Bottle, ctx: Context) -> None:
    @app.get("/healthz")
    def healthz() -> Any:
        return respond(200, {"status": "ok"})

    @app.get("/readyz")
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
