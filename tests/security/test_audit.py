"""The audit chain: recording, rollback, keys, checkpoints, and verify() against tampering."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import stat
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import select

from safecity.platform.errors import ConfigurationError, InvalidInput
from safecity.platform.runtime import Runtime
from safecity.security import audit, keys
from safecity.settings import Settings

from .audit_support import (
    delete_seqs,
    plain_sha256,
    rechain,
    rows,
    set_column,
    set_head,
    swap_seqs,
    write_records,
)

pytestmark = pytest.mark.db


def _verify(runtime: Runtime) -> audit.VerifyReport:
    with runtime.sessions() as session:
        return audit.verify(session)


# --------------------------------------------------------------------------- recording


def test_records_form_a_linear_gapless_chain(runtime: Runtime) -> None:
    write_records(runtime, 7, per_transaction=3)
    found = rows(runtime.engine)
    assert [r.seq for r in found] == list(range(1, 8))
    assert found[0].prev_mac == audit.GENESIS_MAC
    for before, after in itertools.pairwise(found):
        assert after.prev_mac == before.mac
    report = _verify(runtime)
    assert report.ok, report.summary()
    assert report.records == 7
    assert report.summary().startswith("OK: 7 audit records")


def test_record_holds_ids_and_context(runtime: Runtime) -> None:
    token = audit.current_request_id.set("req-42")
    try:
        with runtime.sessions.begin() as session:
            entry = audit.record(
                session,
                principal=audit.SYSTEM,
                action="cases.read",
                target_type="case",
                target_id="c1",
                purpose="investigation",
                detail={"fields": ("reporter",)},
            )
            assert entry.seq is None  # chained at commit
            assert audit.pending_records(session) == [entry]
    finally:
        audit.current_request_id.reset(token)
    (row,) = rows(runtime.engine)
    assert (row.actor_id, row.actor_kind, row.role, row.org_id) == (
        "system",
        "service",
        "admin",
        None,
    )
    assert (row.action, row.target_type, row.target_id) == ("cases.read", "case", "c1")
    assert row.purpose == "investigation"
    assert row.request_id == "req-42"
    assert row.detail == {"fields": ["reporter"]}
    assert entry.seq == 1
    assert entry.mac == row.mac


def test_rollback_writes_nothing_and_leaves_the_head(runtime: Runtime) -> None:
    write_records(runtime, 2)
    with runtime.sessions() as session:
        audit.record(session, principal=audit.SYSTEM, action="x.y", target_type="thing")
        session.rollback()
        session.commit()  # a later commit of the same session must not resurrect it
    write_records(runtime, 1)
    assert [r.seq for r in rows(runtime.engine)] == [1, 2, 3]
    assert _verify(runtime).ok


def test_rolled_back_savepoint_drops_only_its_records(runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:
        audit.record(session, principal=audit.SYSTEM, action="outer.before", target_type="t")
        savepoint = session.begin_nested()
        audit.record(session, principal=audit.SYSTEM, action="inner.undone", target_type="t")
        savepoint.rollback()
        with session.begin_nested():
            audit.record(session, principal=audit.SYSTEM, action="inner.kept", target_type="t")
        audit.record(session, principal=audit.SYSTEM, action="outer.after", target_type="t")
    assert [r.action for r in rows(runtime.engine)] == ["outer.before", "inner.kept", "outer.after"]
    assert _verify(runtime).ok


def test_closed_session_without_commit_records_nothing(runtime: Runtime) -> None:
    session = runtime.sessions()
    audit.record(session, principal=audit.SYSTEM, action="x.y", target_type="t")
    session.close()
    with session.begin():  # the same session, reused
        pass
    assert rows(runtime.engine) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"detail": {"when": object()}}, "plain JSON"),
        ({"detail": {"x": float("nan")}}, "plain JSON"),
        ({"detail": {"blob": "x" * 5000}}, "larger than"),
        ({"action": "a" * 101}, "longer than"),
        ({"action": ""}, "must not be empty"),
        ({"target_id": "bad\x00id"}, "NUL"),
    ],
)
def test_malformed_records_are_refused_at_once(
    runtime: Runtime, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"action": "x.y", "target_type": "thing", **kwargs}
    with runtime.sessions() as session, pytest.raises(InvalidInput, match=message):
        audit.record(session, principal=audit.SYSTEM, **args)  # type: ignore[arg-type]


def test_keys_live_in_files_with_mode_0600_not_in_the_database(
    runtime: Runtime, settings: Settings
) -> None:
    write_records(runtime, 2)
    key_dir = settings.effective_key_dir
    key_file = key_dir / keys.HMAC_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    key = keys.audit_hmac_key(key_dir)
    assert len(key) == 32
    dump = json.dumps([list(r) for r in rows(runtime.engine)], default=str)
    assert key.hex() not in dump
    first = rows(runtime.engine)[0]
    assert first.mac == hmac.new(key, audit.canonical(first), hashlib.sha256).hexdigest()


def test_group_writable_key_file_is_refused(settings: Settings) -> None:
    key_dir = settings.effective_key_dir
    keys.audit_hmac_key(key_dir)
    (key_dir / keys.HMAC_KEY_FILE).chmod(0o666)
    keys.clear_cache()
    with pytest.raises(ConfigurationError, match="writable by other users"):
        keys.audit_hmac_key(key_dir)


def test_verify_without_the_key_is_a_configuration_error(
    runtime: Runtime, settings: Settings
) -> None:
    write_records(runtime, 1)
    (settings.effective_key_dir / keys.HMAC_KEY_FILE).unlink()
    keys.clear_cache()
    with pytest.raises(ConfigurationError, match="missing"):
        _verify(runtime)
    assert not (settings.effective_key_dir / keys.HMAC_KEY_FILE).exists()  # not invented


def test_a_writer_without_the_key_refuses_to_fork_the_chain(
    runtime: Runtime, settings: Settings
) -> None:
    write_records(runtime, 2)
    (settings.effective_key_dir / keys.HMAC_KEY_FILE).unlink()
    keys.clear_cache()
    with pytest.raises(ConfigurationError, match="already holds 2 records"):
        write_records(runtime, 1)
    assert not (settings.effective_key_dir / keys.HMAC_KEY_FILE).exists()
    assert len(rows(runtime.engine)) == 2  # the failed commit wrote nothing


def test_a_lost_signing_key_is_not_replaced_silently(runtime: Runtime, settings: Settings) -> None:
    settings.audit_checkpoint_every = 2
    write_records(runtime, 2)
    (settings.effective_key_dir / keys.SIGNING_KEY_FILE).unlink()
    keys.clear_cache()
    write_records(runtime, 2)  # committed; the checkpoint is skipped (and logged)
    assert [line["seq"] for line in _checkpoint_lines(settings)] == [2]
    assert not (settings.effective_key_dir / keys.SIGNING_KEY_FILE).exists()
    report = _verify(runtime)  # the public key still verifies the old checkpoint
    assert report.ok
    assert report.checkpoints == 1


def test_empty_log_verifies(runtime: Runtime) -> None:
    report = _verify(runtime)
    assert report.ok
    assert report.records == 0


@hyp_settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    detail=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s),
        st.one_of(
            st.integers(-(2**53), 2**53),
            st.booleans(),
            st.none(),
            st.text(max_size=12).filter(lambda s: "\x00" not in s),
            st.floats(allow_nan=False, allow_infinity=False),
            st.lists(st.integers(0, 99), max_size=3),
        ),
        max_size=4,
    ),
    purpose=st.one_of(st.none(), st.text(max_size=30).filter(lambda s: "\x00" not in s)),
)
def test_any_json_detail_survives_the_database_round_trip(
    runtime: Runtime, detail: dict[str, object], purpose: str | None
) -> None:
    with runtime.sessions.begin() as session:
        audit.record(
            session,
            principal=audit.SYSTEM,
            action="prop.test",
            target_type="t",
            purpose=purpose,
            detail=detail,
        )
    report = _verify(runtime)
    assert report.ok, report.summary()


# --------------------------------------------------------------------------- checkpoints


def _checkpoint_lines(settings: Settings) -> list[dict[str, object]]:
    path = audit.checkpoint_path(settings)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_signed_checkpoint_every_n_records(runtime: Runtime, settings: Settings) -> None:
    settings.audit_checkpoint_every = 5
    write_records(runtime, 12, per_transaction=4)
    lines = _checkpoint_lines(settings)
    assert [line["seq"] for line in lines] == [5, 10]
    by_seq = {r.seq: r.mac for r in rows(runtime.engine)}
    assert all(line["mac"] == by_seq[line["seq"]] for line in lines)  # type: ignore[index]
    public = keys.checkpoint_public_key(settings.effective_key_dir)
    assert lines[0]["key"] == keys.key_fingerprint(public)
    key_file = settings.effective_key_dir / keys.SIGNING_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    report = _verify(runtime)
    assert report.ok
    assert report.checkpoints == 2


def test_no_checkpoint_for_a_rolled_back_transaction(runtime: Runtime, settings: Settings) -> None:
    settings.audit_checkpoint_every = 2
    with runtime.sessions() as session:
        audit.record(session, principal=audit.SYSTEM, action="a.b", target_type="t")
        audit.record(session, principal=audit.SYSTEM, action="a.b", target_type="t")
        session.flush()
        session.rollback()
    assert _checkpoint_lines(settings) == []
    write_records(runtime, 2)
    assert [line["seq"] for line in _checkpoint_lines(settings)] == [2]
    assert _verify(runtime).ok


def test_checkpoint_now_signs_the_current_head(runtime: Runtime, settings: Settings) -> None:
    with runtime.sessions() as session:
        assert audit.checkpoint_now(session) is None
    write_records(runtime, 3)
    with runtime.sessions() as session:
        line = audit.checkpoint_now(session)
    assert line is not None
    assert line["seq"] == 3
    assert _verify(runtime).checkpoints == 1


# --------------------------------------------------------------------------- tampering


def _first_bad(runtime: Runtime) -> audit.Finding:
    report = _verify(runtime)
    assert not report.ok
    assert report.first_bad is not None
    assert report.summary().startswith(f"FAILED at seq {report.first_bad.seq}")
    return report.first_bad


@pytest.mark.parametrize(
    "edit",
    [
        {"target_id": "someone-else"},
        {"detail": {"n": 99}},
        {"at": datetime(2020, 1, 1, tzinfo=UTC)},
        {"actor_id": "another-user"},
        {"role": "auditor"},
        {"purpose": "curiosity"},
        {"action": "test.nothing"},
    ],
    ids=lambda edit: next(iter(edit)),
)
def test_edited_row_is_caught(runtime: Runtime, edit: dict[str, object]) -> None:
    write_records(runtime, 6)
    set_column(runtime.engine, 4, **edit)
    bad = _first_bad(runtime)
    assert (bad.seq, bad.code) == (4, "mac")
    assert "edited" in bad.reason


def test_deleted_row_is_caught(runtime: Runtime) -> None:
    write_records(runtime, 6)
    delete_seqs(runtime.engine, 3)
    bad = _first_bad(runtime)
    assert (bad.seq, bad.code) == (3, "gap")
    assert "deleted" in bad.reason


def test_deleted_and_renumbered_rows_are_caught(runtime: Runtime) -> None:
    write_records(runtime, 5)
    delete_seqs(runtime.engine, 3)
    for seq in (4, 5):
        set_column(runtime.engine, seq, seq=seq - 1)
    bad = _first_bad(runtime)
    assert bad.seq == 3
    assert bad.code in {"mac", "link"}


def test_reordered_rows_are_caught(runtime: Runtime) -> None:
    write_records(runtime, 6)
    swap_seqs(runtime.engine, 3, 4)
    bad = _first_bad(runtime)
    assert bad.seq == 3
    assert bad.code in {"mac", "link"}


def test_moved_content_with_own_seq_is_caught_as_a_broken_link(runtime: Runtime) -> None:
    """Reorder by moving contents but keeping each row's own seq and MAC valid requires the
    key; without it the MAC of the moved content fails, with it the link fails."""
    write_records(runtime, 5)
    key = keys.audit_hmac_key(runtime.settings.effective_key_dir)
    row2, row3 = rows(runtime.engine)[1:3]
    # With the key: make row 3 claim to follow row 1 (as if row 2 were moved away).
    set_column(runtime.engine, 3, prev_mac=row2.prev_mac)
    fixed = dict(rows(runtime.engine)[2]._mapping)
    set_column(runtime.engine, 3, mac=audit.compute_mac(key, SimpleNamespace(**fixed)))
    bad = _first_bad(runtime)
    assert (bad.seq, bad.code) == (3, "link")
    assert row3.seq == 3


def test_truncated_tail_is_caught_by_a_checkpoint(runtime: Runtime, settings: Settings) -> None:
    settings.audit_checkpoint_every = 5
    write_records(runtime, 12)
    kept = rows(runtime.engine)[6]  # seq 7
    delete_seqs(runtime.engine, 8, 9, 10, 11, 12)
    set_head(runtime.engine, seq=7, mac=kept.mac)  # the attacker fixes the head too
    bad = _first_bad(runtime)
    assert (bad.seq, bad.code) == (8, "truncated")
    assert "seq 10" in bad.reason


def test_truncated_tail_is_caught_by_the_head(runtime: Runtime) -> None:
    write_records(runtime, 4)
    delete_seqs(runtime.engine, 4)
    bad = _first_bad(runtime)
    assert (bad.seq, bad.code) == (4, "truncated")


def test_chain_recomputed_with_plain_hashes_is_caught(runtime: Runtime) -> None:
    write_records(runtime, 6)
    rechain(runtime.engine, start=3, mac_fn=plain_sha256, edit={"target_id": "forged"})
    bad = _first_bad(runtime)
    assert (bad.seq, bad.code) == (3, "mac")


def test_chain_recomputed_with_a_wrong_key_is_caught(runtime: Runtime) -> None:
    write_records(runtime, 6)
    wrong = b"k" * 32
    rechain(
        runtime.engine,
        start=2,
        mac_fn=lambda m: hmac.new(wrong, m, hashlib.sha256).hexdigest(),
        edit={"actor_id": "nobody"},
    )
    bad = _first_bad(runtime)
    assert (bad.seq, bad.code) == (2, "mac")


def test_chain_recomputed_with_the_right_key_is_caught_by_a_checkpoint(
    runtime: Runtime, settings: Settings
) -> None:
    settings.audit_checkpoint_every = 4
    write_records(runtime, 10)
    key = keys.audit_hmac_key(settings.effective_key_dir)
    rechain(
        runtime.engine,
        start=6,
        mac_fn=lambda m: hmac.new(key, m, hashlib.sha256).hexdigest(),
        edit={"target_id": "forged"},
    )
    bad = _first_bad(runtime)
    assert (bad.seq, bad.code) == (8, "rewritten")
    assert "after seq 4" in bad.reason


def test_altered_checkpoint_file_is_caught(runtime: Runtime, settings: Settings) -> None:
    settings.audit_checkpoint_every = 3
    write_records(runtime, 6)
    path = audit.checkpoint_path(settings)
    lines = path.read_text().splitlines()
    forged = json.loads(lines[1])
    forged["seq"] = 5
    path.write_text(lines[0] + "\n" + json.dumps(forged) + "\n")
    bad = _first_bad(runtime)
    assert (bad.seq, bad.code) == (5, "checkpoint")
    assert "bad signature" in bad.reason


def test_checkpoint_file_of_another_chain_is_caught(runtime: Runtime, settings: Settings) -> None:
    settings.audit_checkpoint_every = 2
    write_records(runtime, 2)
    # The log is replaced wholesale (new head, new chain id), the checkpoint file stays.
    with runtime.engine.begin() as conn:
        conn.execute(audit.AuditEntry.__table__.delete())
        conn.execute(audit.AuditHead.__table__.delete())
    settings.audit_checkpoint_every = 100
    write_records(runtime, 3)
    bad = _first_bad(runtime)
    assert (bad.seq, bad.code) == (2, "checkpoint")
    assert "another chain" in bad.reason


def test_first_bad_link_is_the_lowest(runtime: Runtime) -> None:
    write_records(runtime, 8)
    set_column(runtime.engine, 6, action="forged.later")
    set_column(runtime.engine, 2, action="forged.earlier")
    assert _first_bad(runtime).seq == 2


def test_search_filters_and_pages(runtime: Runtime) -> None:
    write_records(runtime, 5, action="cases.read")
    write_records(runtime, 2, action="orgs.update")
    with runtime.sessions() as session:
        page = audit.search(session, action="cases.*", limit=3)
        assert [e.seq for e in page] == [5, 4, 3]
        rest = audit.search(session, action="cases.*", before_seq=page[-1].seq, limit=3)
        assert [e.seq for e in rest] == [2, 1]
        assert [e.seq for e in audit.search(session, action="orgs.update")] == [7, 6]
        assert audit.search(session, action="cases_*") == []  # '_' is not a wildcard
        assert [e.seq for e in audit.search(session, target_id="t3")] == [3]
        assert session.scalars(select(audit.AuditEntry.seq)).all() != []
