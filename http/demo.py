"""The demo's admin token, kept in the data folder so that a restarted demo (the README's kill -9
step) prints and accepts the same one."""

from __future__ import annotations

import os
import secrets

FILE_NAME = "demo-admin-token"
MIN_LENGTH = 16  # what WAFLEET_ADMIN_TOKEN requires too


def demo_admin_token(data_dir: str) -> tuple[str, str]:
    """(token, path of the file that keeps it): the kept one, or a new one written 0600."""
    path = os.path.join(data_dir, FILE_NAME)
    try:
        with open(path, encoding="ascii") as kept:
            token = kept.read().strip()
        if len(token) >= MIN_LENGTH and token.isascii() and token.isprintable():
            os.chmod(path, 0o600)
            return token, path
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    os.makedirs(data_dir, exist_ok=True)
    token = "wf_admin_" + secrets.token_urlsafe(24)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(token + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)  # a crash mid-write never leaves half a token behind
    return token, path
