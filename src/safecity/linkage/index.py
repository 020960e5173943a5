"""The person index in the product: records in, a model trained and activated, new records
scored, obvious duplicates linked and borderline pairs queued for an analyst (issue 6).

* :func:`ingest_cases`: case persons (victims, suspects, witnesses) come in through the
  cases domain's service (:func:`safecity.cases.service.persons_for_linkage`; domains never
  read each other's tables) and are mapped to the canonical fields the model compares
  (:func:`canonical`). One :class:`LinkRecord` per case person (``source="cases.person"``),
  with a new master person each. Idempotent: a record whose canonical fields did not
  change is left alone; one that changed is updated and scored again.
* :func:`train_model`: EM-train :func:`safecity.linkage.person_index.train` (dedupe) on the
  whole index, store the model JSON with its SHA-256 and thresholds, and make it the one
  active model. Fewer than :data:`MIN_TRAIN_RECORDS` records is refused: EM on a handful of
  records gives meaningless m/u probabilities.
* :func:`run` (the "incremental runs" of the issue): the records not yet scored with the
  active model are compared with the whole index. We use ``person_index.predict`` over all
  index records, with a ``fresh`` column retained, and keep only the pairs where at least
  one side is fresh, rather than Splink's ``find_matches_to_new_records``: the latter does
  not compare the new records with each other (a batch of new duplicates would be missed),
  and one prediction path means the product scores exactly as the benchmarks measured.
  The cost is one prediction over the index's candidate pairs per run, which the blocking
  rules keep to seconds for the index sizes of a city (10⁵ records); the switch to
  ``find_matches_to_new_records`` plus a new-vs-new dedupe is the scale-up path.
  At or above ``auto_link`` the two persons are merged (``persons.merge(kind="auto_link")``);
  between ``review`` and ``auto_link`` a :class:`LinkPair` is queued (``pending``) with the
  per-comparison match weights; a pair an analyst rejected is never linked or queued again.

Scope: ingest only takes case persons of orgs the principal sees (the scheduled job runs as
``audit.SYSTEM``, city-wide). Training and runs work on the whole index, because a person
crosses station boundaries; they need ``linkage:manage``, show no personal data (counts
only) and are audited. Functions take a session and never commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from safecity.cases import service as cases
from safecity.linkage import comparisons as comp
from safecity.linkage import idcard
from safecity.linkage import person_index as pi
from safecity.linkage.models import LinkModel, LinkPair, LinkRecord
from safecity.platform.db import new_id, utcnow
from safecity.platform.errors import InvalidInput, NotFound
from safecity.security import audit
from safecity.security.rbac import Principal
from safecity.settings import Settings

SOURCE_CASES = "cases.person"
MODEL_RECORD = "linkage_model"
RECORD = "linkage_record"
MIN_TRAIN_RECORDS = 100
"""Fewest records to train on: below this EM has too few pairs to estimate m and u."""
INGEST_BATCH = 5000
INGEST_OVERLAP = timedelta(hours=1)
"""The job re-reads case persons this far before the newest ingest (idempotent), so a
person committed late is not missed."""


# ------------------------------------------------------------------------------ ingest


def canonical(person: cases.LinkablePerson) -> dict[str, str | None]:
    """A case person in the canonical fields (``comparisons.CANONICAL_FIELDS``).

    Chinese names are split into surname and given name as ``comparisons`` does (compound
    surnames included); a Latin name's last word is the surname. Birth date and sex come
    from the ID number when its check digit is valid; an invalid number is dropped (it is
    never compared). The phone keeps its digits only.
    """
    fields: dict[str, str | None] = dict.fromkeys(comp.CANONICAL_FIELDS)
    name = comp.clean_text(person.name)
    if name:
        if comp.has_han(name):
            fields["surname"], fields["given_name"] = comp.split_chinese_name(name)
        else:
            parts = name.split(" ")
            fields["given_name"], fields["surname"] = " ".join(parts[:-1]) or None, parts[-1]
    checked = idcard.check(person.id_number)
    if checked.valid and checked.birth_date is not None:
        fields["id_number"] = checked.number
        fields["dob"] = checked.birth_date.isoformat()
        fields["sex"] = checked.sex.lower() if checked.sex else None
    fields["phone"] = comp.normalise_phone(person.phone)
    fields["address"] = comp.clean_text(person.address)
    return {k: (v or None) for k, v in fields.items()}


def _persons() -> Any:
    from safecity.linkage import persons

    return persons


def _upsert(session: Session, person: cases.LinkablePerson) -> bool:
    """Create or update the record of one case person; True when something changed."""
    fields = canonical(person)
    record = session.scalar(
        select(LinkRecord).where(
            LinkRecord.source == SOURCE_CASES, LinkRecord.source_id == person.id
        )
    )
    if record is None:
        master = _persons().new_person(session)
        session.add(
            LinkRecord(
                source=SOURCE_CASES,
                source_id=person.id,
                org_id=person.org_id,
                fields=fields,
                person_id=master.id,
            )
        )
        return True
    if record.fields == fields and record.org_id == person.org_id:
        return False
    record.fields = fields
    record.org_id = person.org_id
    record.scored_with = None  # changed: compare it again
    record.updated_at = utcnow()
    return True


def ingest_cases(
    session: Session,
    *,
    principal: Principal,
    since: datetime | None = None,
    limit: int = INGEST_BATCH,
) -> int:
    """Take in the case persons created at or after ``since`` (all when ``None``), in pages
    of ``limit``; answers how many records were created or changed. Audited
    (``linkage.records.ingest``) with the count."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1")
    changed = seen = 0
    cursor = since
    while True:
        page = cases.persons_for_linkage(session, since=cursor, limit=limit)
        for person in page:
            if principal.sees_org(person.org_id):
                seen += 1
                changed += _upsert(session, person)
        session.flush()
        if len(page) < limit or page[-1].created_at == cursor:
            break
        cursor = page[-1].created_at  # the page's last instant is read again: idempotent
    audit.record(
        session,
        principal=principal,
        action="linkage.records.ingest",
        target_type=RECORD,
        purpose="person index",
        detail={"source": SOURCE_CASES, "read": seen, "changed": changed},
    )
    return changed


def ingest_since(session: Session) -> datetime | None:
    """Where the scheduled ingest starts: the newest ingest minus :data:`INGEST_OVERLAP`."""
    newest = session.scalar(
        select(func.max(LinkRecord.created_at)).where(LinkRecord.source == SOURCE_CASES)
    )
    return None if newest is None else newest - INGEST_OVERLAP


# ---------------------------------------------------------------------------- training


def _rows(records: list[LinkRecord], fresh: set[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        row: dict[str, Any] = {"unique_id": r.id, **(r.fields or {})}
        if fresh is not None:
            row["fresh"] = "1" if r.id in fresh else None
        rows.append(row)
    return rows


def active_model(session: Session) -> LinkModel | None:
    return session.scalar(select(LinkModel).where(LinkModel.active.is_(True)))


def train_on(fields: list[dict[str, Any]], *, thresholds: pi.Thresholds) -> pi.Model:
    """EM-train on canonical records. The records are put in a canonical order (by their
    content) with positional ids first, so the same records always give the same model
    (Splink's random u sampling depends on the row order). :class:`InvalidInput` when
    Splink cannot estimate the model from them."""
    texts = sorted(json.dumps(f, sort_keys=True, ensure_ascii=False) for f in fields)
    rows = [{**json.loads(t), "unique_id": f"r{i}"} for i, t in enumerate(texts)]
    try:
        return pi.train([rows], link_type="dedupe_only", thresholds=thresholds)
    except (pi.PersonIndexError, ValueError) as exc:
        # ValueError: Splink refuses an m or u probability EM drove to 0 (a level that the
        # estimated matches never reach): too uniform data, too few duplicates
        raise InvalidInput(f"cannot train the person index on these records: {exc}") from exc


def train_model(session: Session, *, principal: Principal, settings: Settings) -> LinkModel:
    """Train on every index record, store the model and make it the active one.

    :class:`InvalidInput` below :data:`MIN_TRAIN_RECORDS` records or when Splink refuses
    the data (nothing is written then). Thresholds come from ``settings``
    (``linkage_auto_link``, ``linkage_review``).
    """
    records = list(session.scalars(select(LinkRecord).order_by(LinkRecord.id)))
    if len(records) < MIN_TRAIN_RECORDS:
        raise InvalidInput(
            f"too few records to train the person index: {MIN_TRAIN_RECORDS} needed, "
            f"{len(records)} present (ingest first)",
            needed=MIN_TRAIN_RECORDS,
            present=len(records),
        )
    started = time.perf_counter()
    thresholds = pi.Thresholds(auto_link=settings.linkage_auto_link, review=settings.linkage_review)
    model = train_on([r.fields or {} for r in records], thresholds=thresholds)
    seconds = time.perf_counter() - started
    document = model.to_json()
    digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
    now = utcnow()
    version = f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest[:8]}"
    session.execute(update(LinkModel).where(LinkModel.active.is_(True)).values(active=False))
    row = session.scalar(select(LinkModel).where(LinkModel.version == version))
    if row is None:  # the same records trained twice in one second give the same document
        row = LinkModel(
            version=version,
            trained_at=now,
            document=document,
            sha256=digest,
            auto_link=thresholds.auto_link,
            review=thresholds.review,
            metrics={
                "records": len(records),
                "fields": model.fields,
                "train_seconds": round(seconds, 3),
                "prior": model.training.get("prior", {}).get("calibrated"),
            },
        )
        session.add(row)
    row.active = True
    session.flush()
    audit.record(
        session,
        principal=principal,
        action="linkage.model.train",
        target_type=MODEL_RECORD,
        target_id=row.id,
        detail={"version": version, "records": len(records), "sha256": digest},
    )
    return row


def load_model(row: LinkModel) -> pi.Model:
    """The stored model, checked against its SHA-256 (a changed document is refused)."""
    if hashlib.sha256(row.document.encode("utf-8")).hexdigest() != row.sha256:
        raise InvalidInput(f"model {row.version} does not match its SHA-256: retrain")
    try:
        model = pi.Model.from_json(row.document)
    except pi.PersonIndexError as exc:
        raise InvalidInput(f"model {row.version}: {exc}") from exc
    return dataclasses.replace(
        model,
        thresholds=pi.Thresholds(auto_link=row.auto_link, review=row.review),
        # keep the Bayes factors per comparison: they are the pair's "why" in the queue
        splink_settings={
            **model.splink_settings,
            "retain_intermediate_calculation_columns": True,
        },
    )


# ---------------------------------------------------------------------------- scoring


@dataclass
class RunReport:
    model_version: str | None = None
    scored: int = 0
    candidate_pairs: int = 0
    auto_linked: int = 0
    queued: int = 0
    skipped_rejected: int = 0
    already_linked: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _contributions(row: dict[str, Any]) -> dict[str, float]:
    """Match weight per comparison, term-frequency adjustment included: Splink 5's
    ``mw_<name>`` + ``mw_tf_adj_<name>`` columns (or log2 of the Bayes factors ``bf_*`` of
    older Splink versions)."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if value is None:
            continue
        if key.startswith("mw_") and not key.startswith("mw_tf_adj_"):
            name = key[3:]
            out[name] = round(float(value) + float(row.get(f"mw_tf_adj_{name}") or 0.0), 3)
        elif key.startswith("bf_") and not key.startswith("bf_tf_adj_"):
            name = key[3:]
            factor = float(value) * float(row.get(f"bf_tf_adj_{name}") or 1.0)
            out[name] = round(math.log2(factor), 3) if factor > 0 else -99.0
    return out


def _scored_pairs(session: Session, model: pi.Model, fresh: set[str]) -> list[dict[str, Any]]:
    records = list(session.scalars(select(LinkRecord).order_by(LinkRecord.id)))
    if len(records) < 2:
        return []
    prediction = pi.predict([_rows(records, fresh)], model, retain=["fresh"])
    con = prediction.linker._db_api.duckdb_con
    table = prediction.frame.physical_name
    cursor = con.execute(
        f"SELECT * FROM {table} WHERE match_probability >= ? "  # noqa: S608
        "AND (fresh_l IS NOT NULL OR fresh_r IS NOT NULL) ORDER BY match_probability DESC",
        [model.thresholds.review],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def run(session: Session, *, principal: Principal, settings: Settings) -> RunReport:
    """Score the records not yet scored with the active model against the whole index.

    :class:`NotFound` when no model is active. ``settings`` is the application's (the
    thresholds themselves are the model's, fixed when it was trained).
    """
    del settings  # thresholds travel with the model row
    started = time.perf_counter()
    row = active_model(session)
    if row is None:
        raise NotFound("no active person-index model: train one first")
    report = RunReport(model_version=row.version)
    fresh = set(
        session.scalars(
            select(LinkRecord.id).where(
                or_(LinkRecord.scored_with.is_(None), LinkRecord.scored_with != row.id)
            )
        )
    )
    if fresh:
        model = load_model(row)
        pairs = _scored_pairs(session, model, fresh)
        report.candidate_pairs = len(pairs)
        _apply(session, principal=principal, model_row=row, pairs=pairs, report=report)
        session.execute(
            update(LinkRecord).where(LinkRecord.id.in_(sorted(fresh))).values(scored_with=row.id)
        )
        report.scored = len(fresh)
    report.seconds = round(time.perf_counter() - started, 3)
    audit.record(
        session,
        principal=principal,
        action="linkage.index.run",
        target_type=MODEL_RECORD,
        target_id=row.id,
        purpose="person index",
        detail={k: v for k, v in report.as_dict().items() if k != "seconds"},
    )
    return report


def _kept_apart(session: Session, person_a: str, person_b: str) -> bool:
    """Whether an analyst rejected any pair between the two persons' records (or undid a
    link between them): the index then neither links nor queues them through another pair
    of their records; only an analyst's merge joins them."""
    ids_a = select(LinkRecord.id).where(LinkRecord.person_id == person_a)
    ids_b = select(LinkRecord.id).where(LinkRecord.person_id == person_b)
    found = session.scalar(
        select(LinkPair.id)
        .where(
            LinkPair.state == "rejected",
            or_(
                LinkPair.record_a.in_(ids_a) & LinkPair.record_b.in_(ids_b),
                LinkPair.record_a.in_(ids_b) & LinkPair.record_b.in_(ids_a),
            ),
        )
        .limit(1)
    )
    return found is not None


def _apply(
    session: Session,
    *,
    principal: Principal,
    model_row: LinkModel,
    pairs: list[dict[str, Any]],
    report: RunReport,
) -> None:
    persons = _persons()
    ids = sorted({str(x[k]) for x in pairs for k in ("unique_id_l", "unique_id_r")})
    known = {
        (p.record_a, p.record_b): p
        for p in session.scalars(select(LinkPair).where(LinkPair.record_a.in_(ids)))
    }
    for scored in pairs:
        a, b = sorted((str(scored["unique_id_l"]), str(scored["unique_id_r"])))
        probability = float(scored["match_probability"])
        pair = known.get((a, b))
        if pair is not None and pair.state == "rejected":
            report.skipped_rejected += 1
            continue
        rec_a, rec_b = session.get(LinkRecord, a), session.get(LinkRecord, b)
        if rec_a is None or rec_b is None:  # pragma: no cover - deleted during the run
            continue
        person_a = persons.resolve(session, rec_a.person_id).id
        person_b = persons.resolve(session, rec_b.person_id).id
        if person_a == person_b:
            report.already_linked += 1
            continue
        if _kept_apart(session, person_a, person_b):
            report.skipped_rejected += 1
            continue
        if probability >= model_row.auto_link:
            # the pair is kept as "linked": an unmerge turns it "rejected", never re-linked
            if pair is None:
                pair = LinkPair(
                    id=new_id(),
                    record_a=a,
                    record_b=b,
                    probability=probability,
                    model_id=model_row.id,
                )
                session.add(pair)
                known[(a, b)] = pair
                session.flush()
            pair.state = "linked"
            pair.probability = probability
            pair.contributions = _contributions(scored)
            pair.model_id = model_row.id
            pair.decided_by = principal.id
            pair.decided_at = utcnow()
            pair.reason = "auto-linked"
            # the older record's person survives: references to it stay stable
            first, second = sorted(
                ((rec_a.created_at, person_a), (rec_b.created_at, person_b)),
                key=lambda x: (x[0], x[1]),
            )
            persons.merge(
                session,
                principal=principal,
                survivor_id=first[1],
                absorbed_id=second[1],
                kind="auto_link",
                reason=f"model {model_row.version}: p={probability:.4f}",
                pair_id=pair.id,
            )
            report.auto_linked += 1
            continue
        if pair is not None and pair.state == "linked":
            continue  # decided by an analyst; the persons were split later on purpose
        contributions = _contributions(scored)
        if pair is None:
            pair = LinkPair(
                record_a=a,
                record_b=b,
                probability=probability,
                model_id=model_row.id,
                state="pending",
            )
            session.add(pair)
            known[(a, b)] = pair
        pair.probability = probability
        pair.contributions = contributions
        pair.model_id = model_row.id
        report.queued += 1
    session.flush()
