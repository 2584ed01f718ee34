"""Per-company link credentials, one folder per company (seed: data/sessions/company_{id}/).

Kept apart from the database so that wiping a company's WhatsApp login is deleting one folder,
and so that a link library that wants its own store (neonize's SQLite) gets that folder.
Files are written atomically (temp file + rename) with owner-only permissions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any


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
        folder = self.folder(company_id)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(creds, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, os.path.join(folder, f"{link}.json"))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def wipe(self, company_id: str) -> None:
        shutil.rmtree(self.folder(company_id), ignore_errors=True)
