"""Scoring the shipped rules against the simulator's ground truth (synthetic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from safecity.alerts.models import Alert
from safecity.platform.runtime import Runtime
from safecity.sensing.pipeline import ALERT_SOURCE
from safecity.sim.city import Planted
from safecity.sim.evaluate import score, simulate
from safecity.sim.scenarios import SCENARIOS
from tests.conftest import City


def planted(scenario: str, entity: str) -> Planted:
    sc = SCENARIOS[scenario]
    return Planted(
        kind=sc.kind,
        scenario=scenario,
        sensor_id="s",
        entity=entity,
        expected_category=sc.category,
        rule_id=sc.rule_id,
        time=datetime.now(UTC),
        messages=1,
        also_categories=sc.also,
    )


def test_score_counts_hits_misses_and_false_alarms() -> None:
    truth = [
        planted("repeated_intrusion", "z1"),
        planted("repeated_intrusion", "z2"),
        planted("fire_alarm_failure", "s1"),
        planted("unarmed_intrusion", "z3"),
    ]
    alerts = [
        ("intrusion", "repeated-intrusion:z1"),
        ("fire", "smoke-dense:s1"),  # an incident's second, rightful category
        ("intrusion", "repeated-intrusion:z3"),  # a confounder fired: false positive
        ("fire", "smoke-dense:nobody"),  # not planted at all: false positive
    ]
    result = score(truth, alerts)
    assert (result.incidents, result.confounders) == (3, 1)
    assert result.found == 2
    assert result.true_positives == 2
    assert result.false_positives == 2
    assert result.precision == 0.5
    assert result.recall == pytest.approx(2 / 3)
    assert result.false_positive_sources == {"unarmed_intrusion": 1, "unplanted": 1}
    assert result.missed == ["repeated_intrusion:z2"]
    assert result.by_category["intrusion"] == {
        "alerts": 2,
        "true_positives": 1,
        "false_positives": 1,
        "incidents": 2,
        "found": 1,
    }


@pytest.mark.db
@pytest.mark.parametrize("end_hour", [0, 7, 15, 22])  # UTC: the night rules are Shanghai's
def test_a_simulated_week_scores_the_shipped_rules(
    runtime: Runtime, city: City, end_hour: int
) -> None:
    end = datetime(2026, 11, 20, end_hour, 10, tzinfo=UTC)
    run = simulate(runtime, sensors=200, days=8, seed=5, tick=timedelta(minutes=30), end=end)
    kinds = {p.scenario for p in run.planted}
    # week-long scenarios (water readings day after day) played out inside the horizon
    assert kinds & {"group_rental", "busy_household", "empty_flat"}
    assert run.rejected > 0  # the faulty sensors' garbage was refused
    with runtime.sessions() as s:
        alerts = s.execute(
            select(Alert.category, Alert.dedup_key).where(Alert.source == ALERT_SOURCE)
        ).all()
    result = score(run.planted, [(a[0], a[1]) for a in alerts])
    assert result.incidents > 20
    assert result.recall == 1.0, result.missed
    assert result.precision == 1.0, result.false_positive_sources
