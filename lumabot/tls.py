"""One TLS context for every HTTPS client of the process: loading the CA bundle costs ~20 ms
of CPU, once instead of once per client."""

from __future__ import annotations

import ssl
from functools import lru_cache

import httpx


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle; SSL_CERT_FILE / SSL_CERT_DIR honoured)."""
    return httpx.create_ssl_context(trust_env=True)
