"""A real carbon-cache (Debian's graphite-carbon) on loopback, writing Whisper files to a temp folder."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.harness import free_port, wait_for

CARBON = shutil.which("carbon-cache") or "/usr/bin/carbon-cache"
WHISPER_FETCH = shutil.which("whisper-fetch") or "/usr/bin/whisper-fetch"


class Carbon:
    def __init__(self, workdir: Path) -> None:
        if not Path(CARBON).exists():
            raise RuntimeError("carbon is not installed: run .ci/setup (apt-get install graphite-carbon)")
        self.dir = workdir / "carbon"
        self.whisper = self.dir / "storage" / "whisper"
        self.whisper.mkdir(parents=True)
        self.port = free_port()
        conf = self.dir / "carbon.conf"
        # One point a second kept for an hour, so a test sees StatsD's flushes as they land; the
        # creates limit is lifted because a test makes all its series in its first seconds.
        conf.write_text(
            f"""[cache]
STORAGE_DIR = {self.dir}/storage/
LOCAL_DATA_DIR = {self.whisper}/
WHITELISTS_DIR = {self.dir}/storage/lists/
CONF_DIR = {self.dir}/
LOG_DIR = {self.dir}/log/
PID_DIR = {self.dir}/
DATABASE = whisper
ENABLE_LOGROTATION = False
ENABLE_TAGS = False
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 10000
MAX_CREATES_PER_MINUTE = 100000
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {self.port}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {free_port()}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {free_port()}
WHISPER_AUTOFLUSH = True
"""
        )
        (self.dir / "storage-schemas.conf").write_text("[default]\npattern = .*\nretentions = 1s:1h\n")
        self.log = self.dir / "carbon.out"
        self.proc = subprocess.Popen(
            [CARBON, f"--config={conf}", "--debug", "start"],
            cwd=self.dir,
            stdout=open(self.log, "wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._listening, 30, 0.1, "carbon's line receiver")

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"carbon exited:\n{self.log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def series(self) -> set[str]:
        """Every metric carbon has a Whisper file for, as a dotted name."""
        return {
            ".".join(p.relative_to(self.whisper).with_suffix("").parts) for p in self.whisper.rglob("*.wsp")
        }

    def values(self, name: str, seconds: int = 600) -> list[float]:
        """The points written for ``name`` in the last ``seconds`` (read by whisper-fetch)."""
        path = self.whisper.joinpath(*name.split(".")).with_suffix(".wsp")
        if not path.exists():
            return []
        out = subprocess.run(
            [WHISPER_FETCH, f"--from={int(time.time()) - seconds}", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [float(v) for _, v in (line.split() for line in out.splitlines()) if v != "None"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
