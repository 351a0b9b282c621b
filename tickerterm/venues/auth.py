"""Credentials and request signing: loaded from the environment or a key file, never shown.

``Secret`` wraps a secret string so that ``repr``/``str`` (and so logs, tracebacks and f-strings) show
``***`` instead of its value; only ``reveal()`` gives it out, at the point of signing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tickerterm.core.errors import CredentialsError

JWT_LIFETIME = 120
"""Seconds a Coinbase Advanced Trade JWT is valid."""


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))


@dataclass(frozen=True, slots=True)
class CdpKey:
    """A Coinbase Developer Platform API key: its name (``organizations/…/apiKeys/…``) and private key."""

    name: str
    private_key: Secret
    source: str
    """Where it came from, for messages: the variable or file name (never the value)."""


ENV_KEY = "COINBASE_API_KEY"
ENV_SECRET = "COINBASE_API_SECRET"
ENV_KEY_FILE = "COINBASE_KEY_FILE"


def load_cdp_key(env: Mapping[str, str] | None = None, key_file: str | None = None) -> CdpKey | None:
    """The CDP key from ``key_file``, ``$COINBASE_KEY_FILE``, or the two variables
    ``$COINBASE_API_KEY`` + ``$COINBASE_API_SECRET``.

    Returns None when none is configured. A key file is the JSON Coinbase hands out
    (``{"name": …, "privateKey": …}``; ``id`` is accepted for ``name``).
    """
    env = os.environ if env is None else env
    path = key_file or env.get(ENV_KEY_FILE)
    if path:
        return _from_file(Path(path), "--key-file" if key_file else ENV_KEY_FILE)
    name, secret = env.get(ENV_KEY), env.get(ENV_SECRET)
    if name and secret:
        key = CdpKey(name.strip(), Secret(_unescape(secret)), ENV_SECRET)
        signing_key(key)  # fail now, with a clear message, rather than at the first subscribe
        return key
    if name or secret:
        missing = ENV_SECRET if name else ENV_KEY
        raise CredentialsError(f"{missing} is not set (both {ENV_KEY} and {ENV_SECRET} are needed)")
    return None


def _from_file(path: Path, source: str) -> CdpKey:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise CredentialsError(f"cannot read key file named by {source}: {exc.strerror}") from None
    except (ValueError, RecursionError):
        raise CredentialsError(f"key file named by {source} is not JSON") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"key file named by {source} is not a JSON object")
    name = data.get("name") or data.get("id")
    secret = data.get("privateKey")
    if not isinstance(name, str) or not isinstance(secret, str):
        raise CredentialsError(f'key file named by {source} needs "name" and "privateKey"')
    key = CdpKey(name.strip(), Secret(_unescape(secret)), source)
    signing_key(key)
    return key


def _unescape(text: str) -> str:
    # PEM keys pasted into an environment variable often carry literal "\n"
    return text.replace("\\n", "\n").strip()


_KEY_CACHE: dict[CdpKey, tuple[Any, str]] = {}


def signing_key(key: CdpKey) -> tuple[Any, str]:
    """The loaded private key and its JWT algorithm: ``ES256`` for a PEM EC P-256 key, ``EdDSA`` for
    Ed25519 (PEM, or base64 of the raw 32- or 64-byte secret)."""
    cached = _KEY_CACHE.get(key)
    if cached is not None:
        return cached
    text = key.private_key.reveal()
    bad = CredentialsError(f"{key.source}: not a PEM EC P-256 key or a base64 Ed25519 key")
    loaded: Any
    result: tuple[Any, str]
    if "-----BEGIN" in text:
        try:
            loaded = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError):
            raise bad from None
        if isinstance(loaded, ec.EllipticCurvePrivateKey) and isinstance(loaded.curve, ec.SECP256R1):
            result = (loaded, "ES256")
        elif isinstance(loaded, ed25519.Ed25519PrivateKey):
            result = (loaded, "EdDSA")
        else:
            raise bad
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise bad from None
        if len(raw) not in (32, 64):
            raise bad
        result = (ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32]), "EdDSA")
    _KEY_CACHE[key] = result
    return result


def build_jwt(key: CdpKey, now: float) -> str:
    """A fresh WebSocket JWT: ``iss=cdp``, ``sub``/``kid`` = key name, random ``nonce``, 120 s life,
    no ``uri`` claim (that is for REST)."""
    private, alg = signing_key(key)
    issued = int(now)
    payload = {"iss": "cdp", "sub": key.name, "nbf": issued, "exp": issued + JWT_LIFETIME}
    headers = {"kid": key.name, "nonce": secrets.token_hex(16), "typ": "JWT"}
    return jwt.encode(payload, private, algorithm=alg, headers=headers)


# --- Coinbase Exchange (the cbpro feed): HMAC key + secret + passphrase ------------------------

EXCHANGE_ENV_KEY = "COINBASE_EXCHANGE_API_KEY"
EXCHANGE_ENV_SECRET = "COINBASE_EXCHANGE_API_SECRET"
EXCHANGE_ENV_PASSPHRASE = "COINBASE_EXCHANGE_PASSPHRASE"
EXCHANGE_ENV_KEY_FILE = "COINBASE_EXCHANGE_KEY_FILE"
EXCHANGE_VERIFY_PATH = "/users/self/verify"


@dataclass(frozen=True, slots=True)
class ExchangeKey:
    """A Coinbase Exchange API key: its id, the base64 secret and the passphrase chosen with it."""

    key: str
    secret: Secret
    passphrase: Secret
    source: str


def load_exchange_key(
    env: Mapping[str, str] | None = None, key_file: str | None = None
) -> ExchangeKey | None:
    """The key from ``key_file``, ``$COINBASE_EXCHANGE_KEY_FILE`` (JSON ``{"key","secret","passphrase"}``),
    or the three ``COINBASE_EXCHANGE_*`` variables. None when none is configured."""
    env = os.environ if env is None else env
    path = key_file or env.get(EXCHANGE_ENV_KEY_FILE)
    if path:
        source = "--key-file" if key_file else EXCHANGE_ENV_KEY_FILE
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise CredentialsError(f"cannot read key file named by {source}: {exc.strerror}") from None
        except (ValueError, RecursionError):
            raise CredentialsError(f"key file named by {source} is not JSON") from None
        values = [data.get(k) if isinstance(data, dict) else None for k in ("key", "secret", "passphrase")]
        if not all(isinstance(v, str) and v for v in values):
            raise CredentialsError(f'key file named by {source} needs "key", "secret" and "passphrase"')
        key = ExchangeKey(str(values[0]), Secret(str(values[1])), Secret(str(values[2])), source)
    else:
        names = (EXCHANGE_ENV_KEY, EXCHANGE_ENV_SECRET, EXCHANGE_ENV_PASSPHRASE)
        values = [env.get(n) for n in names]
        if not any(values):
            return None
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        if missing:
            raise CredentialsError(f"{missing[0]} is not set (all of {', '.join(names)} are needed)")
        key = ExchangeKey(str(values[0]), Secret(str(values[1])), Secret(str(values[2])), EXCHANGE_ENV_SECRET)
    try:
        base64.b64decode(key.secret.reveal(), validate=True)
    except (binascii.Error, ValueError):
        raise CredentialsError(f"{key.source}: the secret is not base64") from None
    return key


def exchange_signature(secret: str, timestamp: str) -> str:
    """base64(HMAC-SHA256(base64decode(secret), timestamp + "GET" + "/users/self/verify"))."""
    prehash = (timestamp + "GET" + EXCHANGE_VERIFY_PATH).encode("ascii")
    digest = hmac.new(base64.b64decode(secret), prehash, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def exchange_auth_fields(key: ExchangeKey, now: float) -> dict[str, str]:
    """The fields a signed subscribe frame carries. The timestamp is a float string, as cbpro sends."""
    timestamp = f"{now:.6f}"
    return {
        "signature": exchange_signature(key.secret.reveal(), timestamp),
        "key": key.key,
        "passphrase": key.passphrase.reveal(),
        "timestamp": timestamp,
    }


class ApiToken:
    """A single-value credential (an API key, a Bearer token) and where it came from; never shown."""

    __slots__ = ("secret", "source")

    def __init__(self, secret: Secret, source: str) -> None:
        self.secret = secret
        self.source = source

    def __repr__(self) -> str:
        return f"ApiToken(***, source={self.source!r})"


def load_token(
    env_var: str, field: str, env: Mapping[str, str] | None = None, key_file: str | None = None
) -> ApiToken | None:
    found = load_secret(env_var, field, env, key_file)
    return None if found is None else ApiToken(*found)


def load_secret(
    env_var: str, field: str, env: Mapping[str, str] | None = None, key_file: str | None = None
) -> tuple[Secret, str] | None:
    """A single-value credential (an API key or token) from ``key_file`` (a JSON object with ``field``)
    or the variable ``env_var``, with where it came from; None when neither is set."""
    env = os.environ if env is None else env
    if key_file:
        try:
            data = json.loads(Path(key_file).read_text())
        except OSError as exc:
            raise CredentialsError(f"cannot read key file named by --key-file: {exc.strerror}") from None
        except (ValueError, RecursionError):
            raise CredentialsError("key file named by --key-file is not JSON") from None
        value = data.get(field) if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise CredentialsError(f'key file named by --key-file needs "{field}"')
        return Secret(value), "--key-file"
    value = env.get(env_var)
    return (Secret(value), env_var) if value else None
