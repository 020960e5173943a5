"""Verifiable e-certificates: the cryptographic core (no database).

Modules, bottom up:

- :mod:`.keys` — Ed25519 / ES256 keys, kid = JWK thumbprint, :class:`IssuerKeyStore`
  (files under a key directory, mode 0600, rotation keeps old public keys);
- :mod:`.jose` — compact JWS sign/verify (joserfc) by ``kid``;
- :mod:`.sdjwt` — SD-JWT (RFC 9901) issuance, holder presentation with KB-JWT, verification;
- :mod:`.status_list` — one in-memory status list rendered as IETF Token Status List and
  W3C Bitstring Status List; random indices; batches revoked together; revocation reason
  codes published compactly (``rsn``);
- :mod:`.cwt_qr` — ``SC1:`` offline QR (COSE_Sign1 CWT + zlib + base45), PNG/SVG images;
  compact form with the registered aliases of :mod:`.aliases` (type, profile, attributes);
- :mod:`.profiles` — purpose profiles (hotel, roadside-police, employer, age-check,
  permit-check for organisation permits) and the default profile a certificate satisfies;
- :mod:`.issuance` — issue a certificate's batch of copies, a profile QR, a VC 2.0 view;
- :mod:`.bundle` — signed offline trust bundle (issuer keys + status snapshots);
- :mod:`.verify` — verdicts VALID / REVOKED / SUSPENDED / EXPIRED / STATUS-STALE / INVALID.

Typical flow (the service layer adds persistence, audit and authorisation)::

    store = IssuerKeyStore(settings.effective_key_dir / "eservices")
    sl = StatusList("https://safecity.example/status/1")        # persisted via to_state()
    cert = issue_certificate(certificate_id="c-1", key=store.active(), issuer=ISS,
                             vct=VCT, claims={...}, status_list=sl,
                             holder_keys=[wallet_key], now=now, valid_for=timedelta(days=365))
    # wallet: sdjwt.present(cert.copies[0], PROFILES["hotel"].claims, holder_key=...,
    #                       audience=hotel_id, nonce=challenge, now=now)
    verdict = verify_presentation(p, keys=store.public_keys(),
                                  status=LiveStatusSource({sl.uri: sl}), audience=hotel_id,
                                  nonce=challenge, now=now, profile="hotel")
"""

from safecity.eservices.credentials.bundle import TrustBundle, build_bundle, load_bundle
from safecity.eservices.credentials.cwt_qr import issue_qr, qr_png, qr_svg
from safecity.eservices.credentials.issuance import (
    IssuedCertificate,
    issue_certificate,
    issue_profile_qr,
    vc_view,
)
from safecity.eservices.credentials.keys import IssuerKeyStore, KeySet, PublicKey, SigningKey
from safecity.eservices.credentials.profiles import PROFILES, Profile, get_profile
from safecity.eservices.credentials.sdjwt import issue_sd_jwt, present
from safecity.eservices.credentials.status_list import Status, StatusList, StatusSnapshot
from safecity.eservices.credentials.verify import (
    LiveStatusSource,
    ReplayGuard,
    SnapshotStatusSource,
    Verdict,
    VerdictStatus,
    verify_presentation,
    verify_qr,
)

__all__ = [
    "PROFILES",
    "IssuedCertificate",
    "IssuerKeyStore",
    "KeySet",
    "LiveStatusSource",
    "Profile",
    "PublicKey",
    "ReplayGuard",
    "SigningKey",
    "SnapshotStatusSource",
    "Status",
    "StatusList",
    "StatusSnapshot",
    "TrustBundle",
    "Verdict",
    "VerdictStatus",
    "build_bundle",
    "get_profile",
    "issue_certificate",
    "issue_profile_qr",
    "issue_qr",
    "issue_sd_jwt",
    "load_bundle",
    "present",
    "qr_png",
    "qr_svg",
    "vc_view",
    "verify_presentation",
    "verify_qr",
]
