"""The API key format: `orb_live_` + 40 base62 characters (~238 bits), stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import string

KEY_PREFIX = "orb_live_"
SECRET_LENGTH = 40
VISIBLE_LENGTH = len(KEY_PREFIX) + 6
_ALPHABET = string.ascii_letters + string.digits


def key_generate() -> str:
    """Return a new secret key."""
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))


def key_hash(secret: str) -> str:
    """Return the hex SHA-256 under which a key is stored and looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()


def key_visible_prefix(secret: str) -> str:
    """Return the part of a key shown to operators and customers."""
    return secret[:VISIBLE_LENGTH]


def key_looks_valid(secret: str) -> bool:
    """Cheap syntax check before any lookup."""
    body = secret[len(KEY_PREFIX) :]
    return secret.startswith(KEY_PREFIX) and len(body) == SECRET_LENGTH and body.isalnum() and body.isascii()
