"""Offline verification from the signed trust bundle alone, and the bundle's size.

    .venv/bin/python benchmarks/eservices_bundle.py [--credentials 1000000]
        [--revoked 0.02] [--suspended 0.002] [--no-write]

**Fixtures, networking off.** Certificates are issued through the registry into a
temporary SQLite database; QR texts (``SC1:``) and SD-JWT + KB presentations are minted
for these cases: valid, revoked, suspended, expired QR (its 5 minutes passed), expired
certificate, tampered QR and presentation, wrong issuer key, replayed presentation,
wrong audience, stale snapshot (the bundle 25 h old: simulated clock), and a bundle
signed by a key that is not the device's trust anchor. The fixtures, the bundle
(``registry.trust_bundle``) and the trust anchor are written to files, and a *separate
process* verifies them with :func:`verification.verify_offline`:

* in a new network namespace (``unshare -n``: no interface but a down loopback), when
  the machine allows it (the JSON says whether it did);
* with no ``SAFECITY_*`` variable in its environment (no database URL, no key dir);
* with a Python audit hook installed before anything is imported that refuses and
  counts every ``socket.*`` event and every ``sqlite3.connect`` (and ``open`` of a
  ``.db`` / ``.sqlite`` file): a verifier that touched the network or a database would
  fail with an error and be counted.

Goal (issue 10): 100 % of the fixtures give the expected verdict with the network off.

**Bundle size per 1 million credentials.** Status lists are filled the way the registry
fills them (:data:`registry.COPIES` copies per certificate, each at a random index of a
list of :data:`status_list.MIN_SIZE` entries, 10 % headroom, then a new list), for
``--credentials`` certificates, with ``--revoked`` of them revoked (every copy) and
``--suspended`` suspended; then :func:`build_bundle` signs every list and three issuer
keys (as after two rotations) with the bundle signer, exactly as
``registry.trust_bundle`` does. Reported: lists, entries, bundle bytes, bytes per
million certificates and per million credential copies, build and load time. Goal
≤ 1 MB per 1 million credentials. Writes ``benchmarks/results/eservices_bundle.json``.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "eservices_bundle.json"
AUD = "hotel-310101-0042"
GOAL_BUNDLE_BYTES_PER_M = 1_000_000

# --------------------------------------------------------------------------- the child

CHILD = r"""
import json, sys
EVENTS = {"blocked": []}
def _hook(event, args):
    bad = event.startswith("socket.") or event == "sqlite3.connect"
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        name = args[0].decode() if isinstance(args[0], bytes) else args[0]
        bad = bad or name.endswith((".db", ".sqlite", ".sqlite3"))
    if bad:
        EVENTS["blocked"].append(event)
        raise RuntimeError(f"blocked in the offline verifier: {event}")
sys.addaudithook(_hook)

from datetime import datetime
import time
from safecity.eservices import verification
from safecity.eservices.credentials import ReplayGuard

spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
anchors = verification.read_anchors(spec["anchors"])
guard = ReplayGuard()
out = []
for fx in spec["fixtures"]:
    bundle = spec["bundles"][fx.get("bundle", "main")]
    t0 = time.perf_counter()
    try:
        v = verification.verify_offline(
            fx["text"], bundle=bundle, anchors=anchors,
            audience=fx.get("audience"), nonce=fx.get("nonce"), replay_guard=guard,
            now=datetime.fromisoformat(fx["now"]),
        )
        got, code = str(v.status), v.code
    except Exception as exc:  # the verdict of a refused bundle is the error
        got, code = "ERROR:" + type(exc).__name__, str(exc)[:200]
    out.append({"name": fx["name"], "got": got, "code": code,
                "ms": round((time.perf_counter() - t0) * 1000, 2)})
blocked = list(EVENTS["blocked"])
import socket
try:  # self-test: the hook really refuses a socket
    socket.socket()
    hook_works = False
except RuntimeError:
    hook_works = True
print(json.dumps({"verdicts": out, "blocked_events": blocked, "hook_self_test": hook_works}))
"""


def _reencode_qr(text: str, change: Any) -> str:
    """Decode an ``SC1:`` QR, let ``change`` edit its COSE_Sign1 parts (protected header
    bytes, CWT claims map), and encode it again with the *original* signature: a tamper
    that survives base45, zlib and CBOR and must be caught by the signature check."""
    import zlib

    import base45  # type: ignore[import-untyped]
    import cbor2

    from safecity.eservices.credentials.cwt_qr import PREFIX

    obj = cbor2.loads(zlib.decompress(base45.b45decode(text[len(PREFIX) :])))
    tag = isinstance(obj, cbor2.CBORTag)
    parts = list(obj.value if tag else obj)
    cwt = cbor2.loads(parts[2])
    change(cwt)
    parts[2] = cbor2.dumps(cwt)
    raw = cbor2.dumps(cbor2.CBORTag(18, parts) if tag else parts)
    return PREFIX + str(base45.b45encode(zlib.compress(raw, 9)).decode())


def _set_status_idx(cwt: dict[Any, Any]) -> None:
    """Point the QR at the neighbouring status entry (long or compact status form)."""
    from safecity.eservices.credentials.cwt_qr import STATUS_KEY

    st = cwt[STATUS_KEY]
    if isinstance(st, list):  # compact: [list number, idx]
        st[1] = int(st[1]) ^ 1
    else:  # {"status_list": {"idx": n, "uri": u}}
        st["status_list"]["idx"] = int(st["status_list"]["idx"]) ^ 1


def _shift_exp(cwt: dict[Any, Any]) -> None:
    cwt[4] = int(cwt[4]) + 86_400  # CWT claim 4: exp, one day later


def _flip(text: str, at: int) -> str:
    c = text[at]
    return text[:at] + ("A" if c != "A" else "B") + text[at + 1 :]


def build_fixtures(tmp: Path) -> dict[str, Any]:
    """Issue certificates through the registry, mint the fixtures, write the spec file."""
    import safecity.models  # noqa: F401  (registers every table)
    from _eservices_fixtures import claims, holder
    from safecity.eservices import registry
    from safecity.eservices.credentials import SigningKey, issue_qr
    from safecity.eservices.credentials.bundle import build_bundle
    from safecity.platform.db import Base
    from safecity.platform.runtime import build_runtime
    from safecity.security import audit
    from safecity.settings import Settings

    settings = Settings(
        var_dir=tmp / "var",
        database_url=f"sqlite:///{tmp / 'issuer.db'}",
        key_dir=tmp / "keys",
        log_json=False,
    )
    runtime = build_runtime(settings)
    Base.metadata.create_all(runtime.engine)
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=400)
    ids: dict[str, str] = {}
    for i, name in enumerate(("valid", "revoked", "suspended", "sd_revoked", "expired_cert")):
        with runtime.sessions.begin() as s:
            cert = registry.issue_for_application(
                session=s,
                principal=audit.SYSTEM,
                application_id=f"bundle-{name}",
                item_code="no-criminal-record",
                holder_user_id=holder(i).id,
                claims=claims(i),
                org_id=None,
                now=old if name == "expired_cert" else now,
            )
        ids[name] = cert.id
    idx = {name: i for i, name in enumerate(ids)}

    def qr(name: str, at: datetime) -> str:
        with runtime.sessions.begin() as s:
            return registry.certificate_qr(
                session=s, principal=holder(idx[name]), certificate_id=ids[name], now=at
            )

    def pres(name: str, nonce: str, at: datetime) -> str:
        with runtime.sessions.begin() as s:
            return registry.present_certificate(
                session=s,
                principal=holder(idx[name]),
                certificate_id=ids[name],
                profile="hotel",
                audience=AUD,
                nonce=nonce,
                now=at,
            )

    with runtime.sessions() as s:
        from safecity.eservices.registry_models import Certificate

        expires = s.get(Certificate, ids["expired_cert"]).expires_at  # type: ignore[union-attr]
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    valid_qr = qr("valid", now)
    fx: list[dict[str, Any]] = []

    def add(name: str, text: str, at: datetime, want: str, **extra: Any) -> None:
        fx.append({"name": name, "text": text, "now": at.isoformat(), "expected": want, **extra})

    add("qr valid", valid_qr, now, "VALID")
    add("qr revoked", qr("revoked", now), now, "REVOKED")
    add("qr suspended", qr("suspended", now), now, "SUSPENDED")
    add("qr expired (5 minutes passed)", valid_qr, now + timedelta(minutes=6), "EXPIRED")
    add(
        "qr expired certificate",
        qr("expired_cert", expires - timedelta(minutes=1)),
        expires + timedelta(minutes=1),
        "EXPIRED",
    )
    for pos in (len("SC1:") + 5, len(valid_qr) // 2, len(valid_qr) - 3):
        add(f"qr tampered at char {pos}", _flip(valid_qr, pos), now, "INVALID")
    body = _reencode_qr(valid_qr, lambda cwt: None)
    add("qr re-encoded, unchanged (control)", body, now, "VALID")
    add("qr tampered exp, signature kept", _reencode_qr(valid_qr, _shift_exp), now, "INVALID")
    add(
        "qr tampered status index, signature kept",
        _reencode_qr(valid_qr, _set_status_idx),
        now,
        "INVALID",
    )
    add(
        "qr wrong issuer key",
        issue_qr(
            key=SigningKey.generate("ES256"),
            issuer=registry.ISSUER,
            vct="https://safecity.example/vct/no-criminal-record-certificate",
            profile="hotel",
            claims={"family_name": "王", "given_name": "小明", "id_last4": "1234"},
            now=now,
            status=(f"{registry.STATUS_BASE}/1", 1),
        ),
        now,
        "INVALID",
    )
    p_valid = pres("valid", "n-valid-0001", now)
    add("sd-jwt valid", p_valid, now, "VALID", audience=AUD, nonce="n-valid-0001")
    add("sd-jwt replayed", p_valid, now, "INVALID", audience=AUD, nonce="n-valid-0001")
    p_rev = pres("sd_revoked", "n-revoked-01", now)
    add("sd-jwt revoked", p_rev, now, "REVOKED", audience=AUD, nonce="n-revoked-01")
    p_sus = pres("suspended", "n-suspend-01", now)
    add("sd-jwt suspended", p_sus, now, "SUSPENDED", audience=AUD, nonce="n-suspend-01")
    p_aud = pres("valid", "n-aud-000001", now)
    add(
        "sd-jwt wrong audience", p_aud, now, "INVALID", audience="other-hotel", nonce="n-aud-000001"
    )
    p_tam = pres("valid", "n-tamper-001", now)
    jwt, rest = p_tam.split("~", 1)
    head, body, sig = jwt.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["exp"] = int(payload["exp"]) + 365 * 86_400  # a year longer, signature kept
    forged_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    add(
        "sd-jwt tampered exp in issuer JWT, signature kept",
        f"{head}.{forged_body}.{sig}~{rest}",
        now,
        "INVALID",
        audience=AUD,
        nonce="n-tamper-001",
    )
    parts = p_tam.split("~")
    parts[1] = _flip(parts[1], len(parts[1]) // 2)
    add(
        "sd-jwt tampered disclosure",
        "~".join(parts),
        now,
        "INVALID",
        audience=AUD,
        nonce="n-tamper-001",
    )
    # status changes after the QRs / presentations were minted
    with runtime.sessions.begin() as s:
        for name, fn in (("revoked", registry.revoke), ("sd_revoked", registry.revoke)):
            fn(session=s, principal=audit.SYSTEM, certificate_id=ids[name], reason="bench")
    with runtime.sessions.begin() as s:
        registry.suspend(
            session=s, principal=audit.SYSTEM, certificate_id=ids["suspended"], reason="bench"
        )
    stale_at = now + timedelta(hours=25)
    add("qr, bundle 25 h old (simulated clock)", qr("valid", stale_at), stale_at, "STATUS-STALE")
    fresh_at = now + timedelta(hours=23, minutes=59)
    add("qr, bundle 23 h 59 min old", qr("valid", fresh_at), fresh_at, "VALID")
    with runtime.sessions() as s:
        bundle = registry.trust_bundle(s, now=now)
        from safecity.eservices import registry_keys as rk

        forged = build_bundle(
            signer=SigningKey.generate("ES256"),
            issuer=registry.ISSUER,
            keys=rk.issuer_store(settings.effective_key_dir).public_keys(),
            status_lists=registry.status_lists(s),
            now=now,
        )
    add(
        "bundle not signed by the trust anchor",
        valid_qr,
        now,
        "ERROR:InvalidInput",
        bundle="forged",
    )
    anchors = registry.trust_anchor_jwks(settings.effective_key_dir)
    runtime.close()
    spec = {"fixtures": fx, "bundles": {"main": bundle, "forged": forged}, "anchors": anchors}
    path = tmp / "offline-spec.json"
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    # the verifier needs none of the issuer's files: remove them before it runs
    shutil.rmtree(tmp / "keys", ignore_errors=True)
    shutil.rmtree(tmp / "var", ignore_errors=True)
    for f in tmp.glob("issuer.db*"):
        f.unlink()
    return {"spec": path, "fixtures": fx, "bundle_bytes": len(bundle)}


def run_offline(spec: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFECITY_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent / "src")
    cmd = [sys.executable, "-c", CHILD, str(spec)]
    netns = shutil.which("unshare") is not None and (
        subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0
    )
    if netns:
        cmd = ["unshare", "-n", *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=spec.parent, check=False, timeout=300
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"offline verifier failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["network_namespace"] = netns
    out["process_wall_s"] = round(wall, 2)
    out["env_safecity_vars"] = [k for k in env if k.startswith("SAFECITY_")]
    return out


# --------------------------------------------------------------------------- size


def bench_size(credentials: int, revoked: float, suspended: float, seed: int) -> dict[str, Any]:
    from safecity.eservices import registry
    from safecity.eservices.credentials import KeySet, SigningKey, StatusList, load_bundle
    from safecity.eservices.credentials.bundle import build_bundle
    from safecity.eservices.credentials.status_list import MIN_SIZE

    rng = random.Random(seed)
    copies = registry.COPIES
    lists: list[StatusList] = []
    owner: list[tuple[int, str]] = []
    t0 = time.perf_counter()
    sl: StatusList | None = None
    for n in range(credentials):
        # the registry's rule (registry._allocate): a new list when the open one would
        # pass its 10 % headroom
        if sl is None or copies > sl.free - sl.size // 10:
            sl = StatusList(f"{registry.STATUS_BASE}/{len(lists) + 1}", size=MIN_SIZE, bits=2)
            lists.append(sl)
        cid = f"c{n}"
        sl.allocate(cid, copies)
        owner.append((len(lists) - 1, cid))
    fill_s = time.perf_counter() - t0
    picks = rng.sample(range(credentials), round(credentials * (revoked + suspended)))
    n_rev = round(credentials * revoked)
    for k, n in enumerate(picks):
        li, cid = owner[n]
        if k < n_rev:
            lists[li].revoke(cid, "bench")
        else:
            lists[li].suspend(cid, "bench")
    signer = SigningKey.generate("ES256")
    keys = KeySet([SigningKey.generate(a).public for a in ("ES256", "Ed25519", "ES256")])
    now = datetime.now(UTC)
    t1 = time.perf_counter()
    token = build_bundle(
        signer=signer, issuer=registry.ISSUER, keys=keys, status_lists=lists, now=now
    )
    build_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    loaded = load_bundle(token, KeySet([signer.public]))
    load_s = time.perf_counter() - t2
    assert len(loaded.snapshots) == len(lists)
    assert not loaded.undecodable
    # spot check: a revoked and a valid entry read back right
    li, cid = owner[picks[0]]
    assert loaded.snapshots[lists[li].uri].status(lists[li].indices(cid)[0]) == 1
    size = len(token.encode())
    entries = sum(x.size for x in lists)
    used = sum(int(x.allocated.sum()) for x in lists)
    return {
        "certificates": credentials,
        "copies_per_certificate": copies,
        "credential_copies": used,
        "revoked_share": revoked,
        "suspended_share": suspended,
        "lists": len(lists),
        "entries_per_list": MIN_SIZE,
        "entries_total": entries,
        "bits_per_entry": 2,
        "lst_chars_per_list_mean": round(sum(len(x.lst()) for x in lists) / len(lists)),
        "bundle_bytes": size,
        "bundle_bytes_per_million_certificates": round(size * 1_000_000 / credentials),
        "bundle_bytes_per_million_credential_copies": round(size * 1_000_000 / used),
        "fill_s": round(fill_s, 1),
        "build_s": round(build_s, 3),
        "load_s": round(load_s, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--credentials", type=int, default=1_000_000)
    ap.add_argument("--revoked", type=float, default=0.02)
    ap.add_argument("--suspended", type=float, default=0.002)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    from _common import machine  # benchmarks/_common.py (run as a script)

    console = Console(width=120)
    started = datetime.now(UTC)
    load_start = [round(x, 2) for x in os.getloadavg()]
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sc-bench-bundle-") as tmpdir:
        built = build_fixtures(Path(tmpdir))
        offline = run_offline(built["spec"])
    rows = []
    for fx, got in zip(built["fixtures"], offline["verdicts"], strict=True):
        rows.append(
            {
                "name": fx["name"],
                "expected": fx["expected"],
                "got": got["got"],
                "code": got["code"],
                "ok": fx["expected"] == got["got"],
                "ms": got["ms"],
            }
        )
    ok = sum(r["ok"] for r in rows)
    table = Table(title="offline verification in a separate process, network off")
    for col in ("fixture", "expected", "verdict", "code", "ms"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            r["expected"],
            r["got"] if r["ok"] else f"[red]{r['got']}[/red]",
            str(r["code"])[:40],
            str(r["ms"]),
        )
    console.print(table)
    console.print(
        f"{ok}/{len(rows)} as expected; network namespace: {offline['network_namespace']};"
        f" blocked socket/database events: {len(offline['blocked_events'])};"
        f" hook refuses a socket: {offline['hook_self_test']}"
    )
    size = bench_size(args.credentials, args.revoked, args.suspended, args.seed)
    console.print(
        f"bundle for {size['certificates']:,} certificates ({size['credential_copies']:,}"
        f" copies, {size['lists']} lists): {size['bundle_bytes']:,} bytes ="
        f" {size['bundle_bytes_per_million_certificates']:,} per million certificates,"
        f" {size['bundle_bytes_per_million_credential_copies']:,} per million copies;"
        f" build {size['build_s']} s, load {size['load_s']} s"
    )
    met = {
        "offline_fixtures_100pct": ok == len(rows)
        and not offline["blocked_events"]
        and offline["hook_self_test"],
        "bundle_le_1mb_per_million_certificates": size["bundle_bytes_per_million_certificates"]
        <= GOAL_BUNDLE_BYTES_PER_M,
    }
    console.print(f"goals met: {met}")
    versions = {}
    for name in ("joserfc", "cryptography", "pycose", "cbor2", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    out = {
        "benchmark": "eservices_bundle",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": started.isoformat(timespec="seconds"),
        "machine": {
            **machine(),
            "load_avg_at_start": load_start,
        },
        "versions": versions,
        "params": vars(args),
        "goals": {"offline_fixture_share": 1.0, "bundle_bytes_per_million": 1_000_000},
        "met": met,
        "offline": {
            "fixtures": rows,
            "as_expected": ok,
            "total": len(rows),
            "network_namespace": offline["network_namespace"],
            "blocked_events": offline["blocked_events"],
            "hook_self_test_refused_a_socket": offline["hook_self_test"],
            "env_safecity_vars": offline["env_safecity_vars"],
            "process_wall_s": offline["process_wall_s"],
            "fixture_bundle_bytes": built["bundle_bytes"],
        },
        "size": size,
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
