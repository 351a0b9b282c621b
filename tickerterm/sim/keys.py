"""Test API keys for the simulator's test account (generated, never real)."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tickerterm.venues.auth import CdpKey, Secret


def generate_cdp_key(alg: str = "ES256", name: str | None = None) -> tuple[CdpKey, Any]:
    """A fresh CDP-style key (``ES256``: PEM EC P-256, ``EdDSA``: base64 Ed25519) and its public key."""
    name = name or f"organizations/sim/apiKeys/{secrets.token_hex(8)}"
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        text = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        return CdpKey(name, Secret(text), "generated"), private.public_key()
    if alg == "EdDSA":
        ed = ed25519.Ed25519PrivateKey.generate()
        raw = ed.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        pub = ed.public_key()
        pub_raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        # Coinbase hands Ed25519 secrets out as base64 of the 64-byte seed + public key
        return CdpKey(name, Secret(base64.b64encode(raw + pub_raw).decode()), "generated"), pub
    raise ValueError(f"unknown key algorithm {alg!r}")
