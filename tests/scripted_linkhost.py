"""A scripted link host: speaks the linkhost_worker protocol with canned events, no neonize.

``WAFLEET_SCRIPT`` (JSON) maps a session id to the events sent after its ``start``; each event
gets the session and attempt filled in. ``pair`` answers a pairing code, ``send`` a message id
(or an error when ``to`` is "fail"), ``stop``/``logout`` answer ``stopped``, ``ping`` a ``pong``
(except for the sessions listed in ``WAFLEET_SCRIPT_SILENT``: zombies). With
``WAFLEET_SCRIPT_LOG`` (a file path) it appends every command it receives as ``cmd session``
and ``eof`` when its stdin closes (the node stopping it): the order it saw.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    script = json.loads(os.environ.get("WAFLEET_SCRIPT", "{}"))
    out = sys.stdout

    def send(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    send({"event": "ready", "pid": os.getpid(), "neonize": "scripted"})
    attempts: dict[str, str] = {}
    silent = set(json.loads(os.environ.get("WAFLEET_SCRIPT_SILENT", "[]")))  # never answer a ping
    log_path = os.environ.get("WAFLEET_SCRIPT_LOG")

    def record(text: str) -> None:
        if log_path:
            with open(log_path, "a") as fh:
                fh.write(text + "\n")

    for line in sys.stdin:
        cmd = json.loads(line)
        session = cmd.get("session")
        record(f"{cmd['cmd']} {session}")
        base = {"session": session, "attempt": attempts.get(session)}
        if cmd["cmd"] == "start":
            attempts[session] = cmd.get("attempt")
            base["attempt"] = cmd.get("attempt")
            for event in script.get(session, []):
                send({**base, **event})
        elif cmd["cmd"] == "pair":
            send({**base, "event": "pairing_code", "code": "ABCD-EFGH", "ttl": 60})
        elif cmd["cmd"] == "send":
            if cmd["to"] == "fail":
                send(
                    {**base, "event": "error", "op": "send", "ref": cmd["ref"], "message": "scripted failure"}
                )
            else:
                send({**base, "event": "sent", "ref": cmd["ref"], "id": "3EB0SCRIPTED"})
        elif cmd["cmd"] == "ping":
            if session not in silent:
                send({**base, "event": "pong", "ref": cmd["ref"], "alive": True})
        elif cmd["cmd"] in ("stop", "logout"):
            send({**base, "event": "stopped"})
    record("eof")
    return 0


if __name__ == "__main__":
    sys.exit(main())
