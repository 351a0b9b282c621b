"""What the simulators check of a client's credentials, written from the venues' documentation on the
server's side: the client's signing code (``tickerterm.venues.auth``) is never used to check itself, so
a client bug cannot be mirrored by its own simulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

EXCHANGE_VERIFY_PATH = "/users/self/verify"
"""What Coinbase Exchange signs for a WebSocket subscribe: ``timestamp + "GET" + this path``."""


def verify_cdp_jwt(token: str, public_keys: Mapping[str, Any], now: float, leeway: float = 5.0) -> str:
    """Check a Coinbase Advanced Trade WebSocket JWT; returns the key name. Raises
    ``jwt.InvalidTokenError``.

    Accepts ``iss`` ``cdp`` and the old ``coinbase-cloud``; requires ``kid`` == ``sub``, a known key,
    the algorithm matching that key, and ``nbf``/``exp`` valid at ``now``.
    """
    header = jwt.get_unverified_header(token)
    kid = header.get("kid")
    public = public_keys.get(kid) if isinstance(kid, str) else None
    if public is None:
        raise jwt.InvalidTokenError("unknown key")
    alg = "EdDSA" if isinstance(public, ed25519.Ed25519PublicKey) else "ES256"
    if header.get("alg") != alg:
        raise jwt.InvalidAlgorithmError("algorithm does not match the key")
    claims = jwt.decode(
        token,
        public,
        algorithms=[alg],
        options={"require": ["exp", "nbf", "sub", "iss"], "verify_exp": False, "verify_nbf": False},
    )
    if claims.get("iss") not in ("cdp", "coinbase-cloud"):
        raise jwt.InvalidIssuerError("bad issuer")
    if claims.get("sub") != kid:
        raise jwt.InvalidTokenError("sub does not match kid")
    if not (claims["nbf"] - leeway <= now < claims["exp"] + leeway):
        raise jwt.ExpiredSignatureError("token not valid now")
    return str(kid)


def verify_exchange_auth(
    msg: Mapping[str, Any], accounts: Mapping[str, tuple[str, str]], now: float, window: float = 30.0
) -> str:
    """Check the auth fields of a Coinbase Exchange subscribe frame against ``accounts`` (key -> (secret,
    passphrase)); returns the key. Raises ValueError with the venue-style reason otherwise."""
    key, signature, passphrase, timestamp = (
        msg.get(k) for k in ("key", "signature", "passphrase", "timestamp")
    )
    if not all(isinstance(v, str) for v in (key, signature, passphrase, timestamp)):
        raise ValueError("missing auth fields")
    account = accounts.get(str(key))
    if account is None:
        raise ValueError("invalid API key")
    secret, expected_passphrase = account
    if not hmac.compare_digest(str(passphrase), expected_passphrase):
        raise ValueError("invalid passphrase")
    try:
        ts = float(str(timestamp))
    except ValueError:
        raise ValueError("invalid timestamp") from None
    if abs(now - ts) > window:
        raise ValueError("request timestamp expired")
    message = f"{timestamp}GET{EXCHANGE_VERIFY_PATH}".encode("ascii")
    expected = base64.b64encode(hmac.new(base64.b64decode(secret), message, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, str(signature)):
        raise ValueError("invalid signature")
    return str(key)
