"""Per-company link credentials, one folder per company (``data/sessions/company_{id}/``).

Kept apart from the database so that wiping a company's WhatsApp login is deleting one folder,
and so that a link library that wants its own store (neonize's SQLite) gets that folder.
Files are written atomically (temp file + rename + fsync of file and folder) with owner-only
permissions, on gevent's threadpool: fsync blocks, and on the hub it would stall every session
(measured: a quarter of the node's time while 10,000 sessions connected).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import gevent


class AuthStore:
    def __init__(self, root: str) -> None:
        self.root = root

    def folder(self, company_id: str) -> str:
        return os.path.join(self.root, f"company_{company_id}")

    def load(self, company_id: str, link: str) -> dict[str, Any] | None:
        path = os.path.join(self.folder(company_id), f"{link}.json")
        try:
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable credentials are no credentials: the session asks for a QR

    def save(self, company_id: str, link: str, creds: dict[str, Any]) -> None:
        gevent.get_hub().threadpool.apply(self._write, (company_id, link, json.dumps(creds)))

    def _write(self, company_id: str, link: str, text: str) -> None:
        folder = self.folder(company_id)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, os.path.join(folder, f"{link}.json"))
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself must reach the disk
            finally:
                os.close(dir_fd)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def wipe(self, company_id: str) -> None:
        shutil.rmtree(self.folder(company_id), ignore_errors=True)
