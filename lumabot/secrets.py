"""Secrets at rest: Slack tokens (and Luma keys) are encrypted in the database when
LUMABOT_ENCRYPTION_KEY is set, with `cryptography`'s Fernet (AES-128-CBC with HMAC-SHA256).

LUMABOT_ENCRYPTION_KEY holds one or more Fernet keys, comma-separated: the first encrypts, any
of them decrypts (MultiFernet), so a key is rotated by putting the new one first and keeping the
old one until every secret was written again (docs/operations.md). A sealed value is
`fernet:<token>`; a value stored before the key was set is read as it is, and sealed the next
time it is written."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "fernet:"
MAKE_A_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class SecretsLocked(Exception):
    """A sealed secret cannot be read: no key, or none of the keys is the one that sealed it."""


def parse_keys(value: str) -> list[Fernet]:
    """The Fernet keys of LUMABOT_ENCRYPTION_KEY (ValueError with a sentence if one is not)."""
    keys = [k.strip() for k in value.split(",") if k.strip()]
    if not keys:
        raise ValueError(f"must hold at least one Fernet key (make one with {MAKE_A_KEY})")
    try:
        return [Fernet(k.encode()) for k in keys]
    except (ValueError, TypeError):
        raise ValueError(f"each key must be 32 url-safe base64-encoded bytes (make one with {MAKE_A_KEY})") from None


class Sealer:
    """Seals and opens secrets; without keys it stores them as they are."""

    def __init__(self, keys: list[Fernet] | None = None):
        self._fernet = MultiFernet(keys) if keys else None
        self._first = keys[0] if keys else None

    @property
    def sealing(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str | None) -> str | None:
        if secret is None or self._fernet is None or secret.startswith(PREFIX):
            return secret
        return PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def reseal(self, stored: str) -> str | None:
        """What to store instead of `stored` so that the first key opens it (a secret stored
        before the key was set, or sealed with a key rotated out of first place); None when it
        is fine as it is. SecretsLocked if no key opens it."""
        if self._fernet is None or self._first is None:
            return None
        if not stored.startswith(PREFIX):
            return self.seal(stored)
        token = stored[len(PREFIX):].encode()
        try:
            self._first.decrypt(token)
            return None
        except InvalidToken:
            self.open(stored)   # SecretsLocked when no key opens it
        return PREFIX + self._fernet.rotate(token).decode()

    def open(self, stored: str | None) -> str | None:
        if stored is None or not stored.startswith(PREFIX):
            return stored
        if self._fernet is None:
            raise SecretsLocked("the database holds encrypted tokens: set LUMABOT_ENCRYPTION_KEY to read them")
        try:
            return self._fernet.decrypt(stored[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise SecretsLocked("none of the keys in LUMABOT_ENCRYPTION_KEY opens the stored tokens") from None
