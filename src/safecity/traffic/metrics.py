"""Episode metrics from a SUMO tripinfo file, as RESCO defines them (see the RESCO README).

The run writes ``--tripinfo-output`` with ``write-unfinished`` (vehicles still driving at the
end) and ``write-undeparted`` (vehicles never inserted, ``depart="-1"``, whose departDelay is
window end - scheduled departure). Average delay = mean over all of them of
``timeLoss + departDelay``: never-inserted vehicles count, charged their wait so far.
"""

from __future__ import annotations

import statistics
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safecity.platform.errors import InvalidInput

GRIDLOCK_NEVER_INSERTED = 0.02
GRIDLOCK_DELAY_FACTOR = 2.0


@dataclass(frozen=True, slots=True)
class EpisodeMetrics:
    """One episode. Times in seconds per vehicle."""

    vehicles: int  # demand inside the window: departed + never inserted
    departed: int
    arrived: int  # throughput: vehicles that finished their trip in the window
    never_inserted: int
    avg_delay: float  # timeLoss + departDelay, never-inserted vehicles included
    avg_trip_time: float  # tripinfo duration of departed vehicles
    avg_wait: float  # tripinfo waitingTime of departed vehicles
    congestion_index: float  # sum(travel time + depart delay) / sum(free-flow time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_tripinfo(path: Path) -> EpisodeMetrics:
    """Score one episode from its tripinfo file."""
    if not path.is_file():
        raise InvalidInput(f"tripinfo file not found: {path}")
    delays: list[float] = []
    durations: list[float] = []
    waits: list[float] = []
    arrived = never = 0
    travel = free_flow = 0.0
    try:
        for _, el in ET.iterparse(path):  # noqa: S314 - SUMO's own output file
            if el.tag != "tripinfo":
                continue
            depart_delay = float(el.get("departDelay", "0"))
            if float(el.get("depart", "0")) < 0:
                if depart_delay > 0:  # scheduled inside the window, never inserted
                    never += 1
                    delays.append(depart_delay)
                el.clear()
                continue
            duration = float(el.get("duration", "0"))
            time_loss = float(el.get("timeLoss", "0"))
            delays.append(time_loss + depart_delay)
            durations.append(duration)
            waits.append(float(el.get("waitingTime", "0")))
            if float(el.get("arrival", "-1")) >= 0:
                arrived += 1
            travel += duration + depart_delay
            free_flow += max(duration - time_loss, 0.0)
            el.clear()
    except ET.ParseError as exc:
        raise InvalidInput(f"tripinfo file {path} is not valid XML: {exc}") from exc

    def mean(xs: Sequence[float]) -> float:
        return statistics.fmean(xs) if xs else 0.0

    return EpisodeMetrics(
        vehicles=len(delays),
        departed=len(durations),
        arrived=arrived,
        never_inserted=never,
        avg_delay=mean(delays),
        avg_trip_time=mean(durations),
        avg_wait=mean(waits),
        congestion_index=travel / free_flow if free_flow > 0 else 0.0,
    )


def gridlocked(episodes: Sequence[EpisodeMetrics]) -> list[bool]:
    """The issue's rule, per episode of one cell (scenario x controller x scale): more than
    2% of its demand never entered, or its delay is more than twice the cell's median."""
    if not episodes:
        return []
    median = statistics.median(e.avg_delay for e in episodes)
    return [
        e.never_inserted > GRIDLOCK_NEVER_INSERTED * max(e.vehicles, 1)
        or e.avg_delay > GRIDLOCK_DELAY_FACTOR * median
        for e in episodes
    ]
