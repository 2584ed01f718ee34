"""Where a company's WhatsApp Web store lives, and how it is wiped.

Standard library only: the node (``wafleet.actors.links.web``) and the link-host worker process
(``wafleet.actors.linkhost_worker``, which runs without gevent) both use it.
"""

from __future__ import annotations

import os
from pathlib import Path


def store_path(store_dir: str | os.PathLike[str], company_id: str) -> Path:
    """neonize's SQLite store of one company: ``store_dir/company_{id}/neonize.db``."""
    return Path(store_dir) / f"company_{company_id}" / "neonize.db"


def wipe_store(store: str) -> None:
    """Delete a session's sqlite store (and its journal files); Postgres stores are left to whatsmeow,
    which deletes the device's rows itself on logout."""
    if store.startswith("postgres"):
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(store + suffix)
        except FileNotFoundError:
            pass
    folder = Path(store).parent
    try:
        folder.rmdir()  # only if empty
    except OSError:
        pass
