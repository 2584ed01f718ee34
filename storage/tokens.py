"""Company API tokens: shown once, stored only as a SHA-256 hash.

A token is 32 random bytes, so a fast hash is enough (no password stretching needed) and lets
every request be authorised with a dictionary lookup.
"""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    return "wf_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
