"""The node under real supervisord, run with the repository's supervisor.conf.

supervisord (Debian package ``supervisor``) runs in the foreground (``-n``) with its control socket,
pid file and logs in temporary folders; the node listens on a free port of 127.0.0.1.
"""

from __future__ import annotations

import configparser
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import ADMIN_TOKEN, Node, wait_for

pytestmark = pytest.mark.slow

CONF = Path(__file__).resolve().parent.parent / "supervisor.conf"
PROGRAM = "wafleet"
STARTSECS = 5  # as in supervisor.conf; checked by test_conf_keeps_its_promises
STOPWAITSECS = 30
MINFDS = 65536


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Supervisord:
    """A real supervisord running supervisor.conf, and a Node client pointed at its wafleet."""

    def __init__(self, workdir: Path) -> None:
        supervisord, supervisorctl = shutil.which("supervisord"), shutil.which("supervisorctl")
        if supervisord is None or supervisorctl is None:
            raise RuntimeError("supervisord is not installed: apt-get install supervisor")
        self.supervisord, self.supervisorctl = supervisord, supervisorctl
        # The Node gives us a free port, the admin token, the data dir and the API helpers; we
        # never call its start(): supervisord starts the node. INFO logs show the graceful path.
        self.node = Node(workdir, WHATSAPP_LOG_LEVEL="info")
        self.home = workdir / "home"
        self.log_dir = workdir / "log"
        # A unix socket path must fit in 108 bytes: pytest's tmp_path can be too long for that.
        self.run_dir = Path(tempfile.mkdtemp(prefix="wafleet-sv-"))
        for folder in (self.home, self.log_dir):
            folder.mkdir()
        bindir = os.path.dirname(sys.executable)
        if shutil.which("wafleet", path=bindir) is None:
            raise RuntimeError(f"no wafleet entry point in {bindir}: pip install -e '.[dev]'")
        self.env = dict(self.node.env)
        self.env.update(
            WAFLEET_HOME=str(self.home),
            WAFLEET_LOG_DIR=str(self.log_dir),
            WAFLEET_RUN_DIR=str(self.run_dir),
            # `command=wafleet serve` must be this interpreter's entry point, not another one.
            PATH=bindir + os.pathsep + self.env.get("PATH", ""),
        )
        self.out_path = workdir / "supervisord.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.node_pids: set[int] = set()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Supervisord:
        cmd = [self.supervisord, "-n", "-c", str(CONF)]
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < MINFDS:
            # supervisord refuses to start when it cannot raise RLIMIT_NOFILE to minfds (a
            # container without CAP_SYS_RESOURCE): test the rest of the file at what we may have.
            cmd.append(f"--minfds={hard}")
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def shutdown(self) -> None:
        """Stop supervisord and, through it, the node; kill what is left if it will not go."""
        clean = False
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.ctl("shutdown")
                self.proc.wait(STOPWAITSECS + 15)
                clean = True
        except Exception:
            pass
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            if not clean:  # supervisord died or hung: its node may be orphaned
                for pid in self.node_pids:
                    if _pid_alive(pid):
                        os.killpg(pid, signal.SIGKILL)  # the node leads its own group
            self.node.close()
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- supervisorctl --------------------------------------------------------------------------
    def ctl(self, *args: str, timeout: float = STOPWAITSECS + 15) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.supervisorctl, "-c", str(CONF), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"supervisord exited with {self.proc.returncode}:\n{self.report()}")

    def state(self) -> tuple[str, int]:
        """(state, pid) from `supervisorctl status`; ("", 0) while supervisord is not answering."""
        self._check_alive()
        fields = self.ctl("status", PROGRAM).stdout.split()
        if len(fields) < 2 or fields[0] != PROGRAM:
            return "", 0
        pid = int(fields[3].rstrip(",")) if fields[1] == "RUNNING" else 0
        return fields[1], pid

    def pid(self) -> int:
        """The node's pid from `supervisorctl pid wafleet` (0 when it is not running)."""
        self._check_alive()
        out = self.ctl("pid", PROGRAM).stdout.strip()
        pid = int(out) if out.isdigit() else 0
        if pid:
            self.node_pids.add(pid)
        return pid

    def wait_running(self, timeout: float = STARTSECS + 15) -> int:
        """Wait for RUNNING (the node stayed up startsecs); return its pid."""
        state, pid = wait_for(
            lambda: (s := self.state())[0] == "RUNNING" and s, timeout, 0.1, "wafleet to be RUNNING"
        )
        self.node_pids.add(pid)
        return pid

    def ready(self) -> bool:
        self._check_alive()
        try:
            return self.node.client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 20.0) -> None:
        wait_for(self.ready, timeout, 0.05, f"/readyz 200 on port {self.node.port}")

    # -- logs -----------------------------------------------------------------------------------
    def supervisord_log(self) -> str:
        path = self.log_dir / "supervisord.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def node_log(self) -> str:
        path = self.log_dir / "wafleet.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def report(self) -> str:
        out = self.out_path.read_text(errors="replace") if self.out_path.exists() else ""
        return f"--- supervisord output\n{out}\n--- wafleet.log\n{self.node_log()}"


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Supervisord]:
    sv = Supervisord(tmp_path)
    try:
        yield sv.start()
    finally:
        sv.shutdown()


def test_conf_keeps_its_promises() -> None:
    """The settings the node's shutdown and these tests rely on, and no secret in the file."""
    text = CONF.read_text()
    conf = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    conf.read_string(text)
    program = conf[f"program:{PROGRAM}"]
    assert program["command"] == "wafleet serve"
    assert program["autorestart"] == "true"
    assert int(program["startsecs"]) == STARTSECS
    assert program["stopsignal"] == "TERM"
    assert int(program["stopwaitsecs"]) == STOPWAITSECS
    assert program["stopasgroup"] == "true" and program["killasgroup"] == "true"
    assert program["redirect_stderr"] == "true"
    assert "PYTHONUNBUFFERED" in program["environment"]
    assert int(conf["supervisord"]["minfds"]) == MINFDS
    assert "%(ENV_WAFLEET_RUN_DIR)s" in conf["supervisorctl"]["serverurl"]
    assert "ADMIN_TOKEN" not in program["environment"] and ADMIN_TOKEN not in text


def test_sigkilled_node_comes_back_with_its_sessions(supervised: Supervisord) -> None:
    sv, node = supervised, supervised.node
    sv.wait_ready()
    node.create_company("alpha")
    node.create_company("bravo")
    node.connect("alpha")
    assert node.status("bravo")["status"] == "stopped"
    # Killed after startsecs: a crash of a running node, which supervisord restarts at once.
    first = sv.wait_running()
    assert sv.pid() == first

    os.kill(first, signal.SIGKILL)

    wait_for(lambda: not _pid_alive(first), 10, what=f"node {first} to be gone")
    second = wait_for(lambda: (p := sv.pid()) != first and p, 15, 0.05, "a new node pid")
    sv.wait_ready()
    alpha = node.wait_status("alpha", "connected", timeout=20)
    statuses = [(h["status"], h["reason"]) for h in alpha["history"]]
    boot = statuses.index(("reconnecting", "boot"))  # the history from before the kill is kept
    assert ("connected", "linked") in statuses[:boot] and statuses[-1][0] == "connected"
    bravo = node.status("bravo")
    assert bravo["status"] == "stopped" and bravo["connected"] is False
    assert "exited: wafleet (terminated by SIGKILL; not expected)" in sv.supervisord_log()
    assert sv.wait_running() == second  # and supervisord counts it as a successful start
    assert "restoring 1 sessions" in sv.node_log()


def test_supervisorctl_stop_is_graceful(supervised: Supervisord) -> None:
    sv, node = supervised, supervised.node
    sv.wait_ready()
    node.create_company("alpha")
    node.connect("alpha")
    pid = sv.wait_running()

    started = time.monotonic()
    stopped = sv.ctl("stop", PROGRAM)  # returns once supervisord saw the process exit
    elapsed = time.monotonic() - started

    assert stopped.returncode == 0 and f"{PROGRAM}: stopped" in stopped.stdout, stopped
    assert elapsed < STOPWAITSECS
    assert not _pid_alive(pid)
    assert sv.state() == ("STOPPED", 0)
    log = sv.supervisord_log()
    assert "stopped: wafleet (exit status 0)" in log, log
    assert "SIGKILL" not in log
    node_log = wait_for(
        lambda: (text := sv.node_log()) and "stopped (exit 0)" in text and text,
        5,
        what="the node's last line",
    )
    assert "signal 15: stopping (finishing requests, then the tree)" in node_log

    # The graceful stop kept alpha's wish to run: started again, it reconnects by itself.
    assert sv.ctl("start", PROGRAM).returncode == 0
    sv.wait_ready()
    node.wait_status("alpha", "connected", timeout=20)
