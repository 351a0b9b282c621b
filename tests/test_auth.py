"""JWT and credential handling with a fixed clock; secrets never shown."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jwt
import pytest

from tickerterm.core.errors import CredentialsError
from tickerterm.sim.auth import verify_cdp_jwt as verify_jwt
from tickerterm.sim.keys import generate_cdp_key
from tickerterm.venues.auth import CdpKey, Secret, build_jwt, load_cdp_key, signing_key

NOW = 1714564800.0


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_jwt_round_trip(alg: str) -> None:
    key, public = generate_cdp_key(alg)
    token = build_jwt(key, NOW)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["kid"] == key.name and header["typ"] == "JWT"
    assert len(header["nonce"]) == 32 and int(header["nonce"], 16) >= 0
    claims = jwt.decode(token, public, algorithms=[alg], options={"verify_exp": False, "verify_nbf": False})
    assert claims == {"iss": "cdp", "sub": key.name, "nbf": 1714564800, "exp": 1714564920}  # no uri claim
    assert verify_jwt(token, {key.name: public}, NOW + 60) == key.name
    assert build_jwt(key, NOW) != token  # a fresh nonce every time


def test_verify_rejects_expired_foreign_and_mismatched_tokens() -> None:
    key, public = generate_cdp_key("ES256")
    other, other_public = generate_cdp_key("ES256", name=key.name)
    token = build_jwt(key, NOW)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify_jwt(token, {key.name: public}, NOW + 200)
    with pytest.raises(jwt.InvalidSignatureError):
        verify_jwt(token, {key.name: other_public}, NOW)
    with pytest.raises(jwt.InvalidTokenError):
        verify_jwt(token, {"someone-else": public}, NOW)
    ed, ed_public = generate_cdp_key("EdDSA", name=key.name)
    with pytest.raises(jwt.InvalidAlgorithmError):
        verify_jwt(token, {key.name: ed_public}, NOW)
    del other, ed


def test_old_coinbase_cloud_issuer_is_accepted_by_the_simulator() -> None:
    key, public = generate_cdp_key("ES256")
    private, alg = signing_key(key)
    token = jwt.encode(
        {"iss": "coinbase-cloud", "sub": key.name, "nbf": int(NOW), "exp": int(NOW) + 120},
        private,
        algorithm=alg,
        headers={"kid": key.name, "nonce": "ab"},
    )
    assert verify_jwt(token, {key.name: public}, NOW) == key.name


def test_load_from_environment_with_escaped_newlines() -> None:
    key, _ = generate_cdp_key("ES256")
    pem = key.private_key.reveal().replace("\n", "\\n")
    loaded = load_cdp_key({"COINBASE_API_KEY": key.name, "COINBASE_API_SECRET": pem})
    assert loaded is not None and loaded.name == key.name
    assert signing_key(loaded)[1] == "ES256"
    assert load_cdp_key({}) is None


def test_load_from_key_file(tmp_path: Path) -> None:
    key, _ = generate_cdp_key("EdDSA")
    path = tmp_path / "cdp_api_key.json"
    path.write_text(json.dumps({"id": key.name, "privateKey": key.private_key.reveal()}))
    loaded = load_cdp_key({"COINBASE_KEY_FILE": str(path)})
    assert loaded is not None and loaded.name == key.name and signing_key(loaded)[1] == "EdDSA"
    raw32 = base64.b64decode(key.private_key.reveal())[:32]
    short = CdpKey(key.name, Secret(base64.b64encode(raw32).decode()), "test")
    assert signing_key(short)[1] == "EdDSA"


def test_missing_and_bad_credentials_name_the_variable_but_never_the_secret(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=r"^COINBASE_API_SECRET is not set"):
        load_cdp_key({"COINBASE_API_KEY": "organizations/x/apiKeys/y"})
    with pytest.raises(CredentialsError, match=r"^COINBASE_API_KEY is not set"):
        load_cdp_key({"COINBASE_API_SECRET": "c2VjcmV0"})
    secret = "-----BEGIN EC PRIVATE KEY-----\nTOPSECRETVALUE\n-----END EC PRIVATE KEY-----"
    with pytest.raises(CredentialsError) as info:
        load_cdp_key({"COINBASE_API_KEY": "k", "COINBASE_API_SECRET": secret})
    assert "TOPSECRETVALUE" not in str(info.value) and "COINBASE_API_SECRET" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(CredentialsError, match="cannot read key file named by COINBASE_KEY_FILE"):
        load_cdp_key({"COINBASE_KEY_FILE": str(tmp_path / "missing.json")})


def test_secret_is_never_in_repr_or_str() -> None:
    key, _ = generate_cdp_key("ES256")
    text = key.private_key.reveal()
    assert "PRIVATE" in text
    for shown in (repr(key), str(key), f"{key}", repr(key.private_key), str(key.private_key)):
        assert "PRIVATE" not in shown and "***" in shown
