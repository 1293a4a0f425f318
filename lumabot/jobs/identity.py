"""The opaque end-user id sent to Luma: stable per (team, user), not reversible, no PII."""

from __future__ import annotations

import hashlib
import hmac


def luma_user_id(team_id: str, user_id: str, salt: str) -> str:
    digest = hmac.new(salt.encode(), f"{team_id}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"slack-{digest[:40]}"
