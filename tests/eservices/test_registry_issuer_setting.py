"""SAFECITY_ESERVICES_ISSUER names the issuer everywhere: credentials, QR, status lists,
the trust bundle and the issuer metadata."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from safecity.eservices import registry, verification
from safecity.eservices.credentials.aliases import VCT_ALIASES
from safecity.platform.runtime import Runtime
from safecity.settings import Settings
from tests.eservices.registry_fixtures import NOW, People, issue, people, principal

__all__ = ["people"]

ISSUER = "https://certs.city.example/eservices"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"eservices_issuer": ISSUER})


def _payload(jwt: str) -> dict[str, object]:
    part = jwt.split("~", 1)[0].split(".")[1]
    out: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return out


def test_the_setting_names_the_issuer_everywhere(
    runtime: Runtime, people: People, client: TestClient
) -> None:
    cert = issue(runtime, people)
    with runtime.sessions.begin() as s:
        who = principal(s, people.citizen)
        detail = registry.get_certificate(session=s, principal=who, certificate_id=cert.id)
        qr = registry.certificate_qr(session=s, principal=who, certificate_id=cert.id, now=NOW)
        token = registry.status_list_token(s, 1, now=NOW)
        bundle = registry.trust_bundle(s, now=NOW)
        doc = registry.bitstring_credential(s, 1, "revocation", now=NOW)
    assert detail.vc["issuer"] == ISSUER
    uri = f"{ISSUER}/status/1"
    assert detail.vc["credentialStatus"][0]["statusListCredential"] == f"{uri}/revocation"
    assert _payload(token)["iss"] == ISSUER
    assert _payload(token)["sub"] == uri
    assert _payload(bundle)["iss"] == ISSUER
    assert isinstance(doc, dict)
    assert doc["issuer"] == ISSUER
    cache = verification.cache_for(runtime.sessions, runtime.settings.effective_key_dir)
    verdict = verification.verify_text(qr, cache=cache, now=NOW + timedelta(seconds=5))
    assert verdict.valid
    assert verdict.issuer == ISSUER
    meta = client.get("/.well-known/jwt-vc-issuer").json()
    assert meta["issuer"] == ISSUER
    assert meta["vct_aliases"]["2"] == VCT_ALIASES[2]
    assert "superseded" in meta["revocation_reason_codes"]


def test_the_default_is_unchanged() -> None:
    assert Settings().eservices_issuer == registry.ISSUER == "https://safecity.example"
    with pytest.raises(ValueError, match="eservices_issuer"):
        Settings(eservices_issuer="http://plain.example")
