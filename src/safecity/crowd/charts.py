"""Server-side SVG geometry for the crowd console's charts: actual vs forecast with the
interval as a band, the warn/critical lines, outage hours and risk markers.

The console's CSP forbids inline scripts, and a chart an officer needs must not depend on
JavaScript, so the numbers become SVG path strings here and the template only places them
(the fraud dashboard does the same for its bars). The template also prints the numbers as a
table under the chart for screen readers.

Rules the drawing keeps:

* a missing count (gap, outage, no report) **breaks** the actual line: it is never drawn as
  0 and never bridged; an isolated hour between two gaps is a dot;
* the band is the interval ``[lower, upper]`` of consecutive forecast hours, one closed
  polygon per run of consecutive hours; the point forecast is a dashed line over it;
* hours are placed at the middle of their slot, so an hour is a column of width 1 h.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from safecity.crowd.views import HOUR, ForecastPoint, HourCount, RiskRow

WIDTH = 720
HEIGHT = 260
SMALL_WIDTH = 360
SMALL_HEIGHT = 140
LEFT = 56
RIGHT = 12
TOP = 12
BOTTOM = 28


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Slot:
    x: float
    width: float
    hour: datetime
    status: str


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    level: str
    target: datetime


@dataclass(frozen=True)
class Limit:
    name: str
    value: float
    y: float


@dataclass
class Chart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    y_max: float
    actual: list[str] = field(default_factory=list)
    """One path per run of consecutive counted hours (``M x y L ...``)."""
    dots: list[tuple[float, float]] = field(default_factory=list)
    """Counted hours with no counted neighbour (a run of one)."""
    band_past: list[str] = field(default_factory=list)
    band_ahead: list[str] = field(default_factory=list)
    point_past: list[str] = field(default_factory=list)
    point_ahead: list[str] = field(default_factory=list)
    missing: list[Slot] = field(default_factory=list)
    """Hours with no count, shaded (class by status: gap, outage, missing)."""
    limits: list[Limit] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    now_x: float | None = None

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"


def nice_max(value: float) -> float:
    """A round axis top at or above ``value`` (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10ⁿ)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def _runs(points: Sequence[tuple[datetime, float]]) -> list[list[tuple[datetime, float]]]:
    """Split time-ordered points into runs of consecutive hours."""
    runs: list[list[tuple[datetime, float]]] = []
    for t, v in points:
        if runs and t - runs[-1][-1][0] == HOUR:
            runs[-1].append((t, v))
        else:
            runs.append([(t, v)])
    return runs


def _line(run: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{_fmt(x)} {_fmt(y)}" for i, (x, y) in enumerate(run))


def _band(
    forecasts: Sequence[ForecastPoint], x: Callable[[datetime], float], y: Callable[[float], float]
) -> list[str]:
    paths: list[str] = []
    by_target = {f.target: f for f in forecasts}
    for run in _runs([(f.target, 0.0) for f in sorted(forecasts, key=lambda f: f.target)]):
        items = [by_target[t] for t, _ in run]
        if len(items) == 1:  # one hour: a column of the hour's width
            f = items[0]
            half = (x(f.target + HOUR) - x(f.target)) / 2 * 0.6
            cx = x(f.target)
            top, bottom = y(f.upper), y(f.lower)
            paths.append(
                f"M{_fmt(cx - half)} {_fmt(top)} L{_fmt(cx + half)} {_fmt(top)} "
                f"L{_fmt(cx + half)} {_fmt(bottom)} L{_fmt(cx - half)} {_fmt(bottom)} Z"
            )
            continue
        upper = [(x(f.target), y(f.upper)) for f in items]
        lower = [(x(f.target), y(f.lower)) for f in reversed(items)]
        paths.append(_line(upper + lower) + " Z")
    return paths


def _points(
    forecasts: Sequence[ForecastPoint], x: Callable[[datetime], float], y: Callable[[float], float]
) -> list[str]:
    ordered = sorted(forecasts, key=lambda f: f.target)
    return [
        _line([(x(t), y(v)) for t, v in run])
        for run in _runs([(f.target, f.point) for f in ordered])
        if len(run) > 1
    ]


def series_chart(
    *,
    start: datetime,
    end: datetime,
    counts: Sequence[HourCount],
    past: Sequence[ForecastPoint],
    ahead: Sequence[ForecastPoint],
    warn: float,
    critical: float,
    risks: Sequence[RiskRow] = (),
    label: Callable[[datetime], str],
    small: bool = False,
    tick_every: int = 6,
) -> Chart:
    """The chart of one hotspot from ``start`` to the last hour shown (``end`` or the last
    forecast ahead). ``label`` turns an hour into its tick text (the hotspot's local time)."""
    last = max([end - HOUR, *(f.target for f in ahead), *(f.target for f in past)])
    if last < start:
        last = start
    slots = int((last - start) / HOUR) + 1
    width, height = (SMALL_WIDTH, SMALL_HEIGHT) if small else (WIDTH, HEIGHT)
    left, right, top, bottom = (LEFT - 12 if small else LEFT), RIGHT, TOP, BOTTOM
    plot_w = width - left - right
    plot_h = height - top - bottom
    values = [c.count for c in counts if c.count is not None]
    values += [f.upper for f in [*past, *ahead]]
    values += [r.expected for r in risks]
    y_max = nice_max(max([*values, critical * 1.05, warn * 1.05, 1.0]))
    slot_w = plot_w / slots

    def x(t: datetime) -> float:
        return left + ((t - start) / HOUR + 0.5) * slot_w

    def y(v: float) -> float:
        return top + plot_h * (1 - max(0.0, min(v, y_max)) / y_max)

    chart = Chart(
        width=width, height=height, left=left, right=right, top=top, bottom=bottom, y_max=y_max
    )
    counted = [(c.hour, c.count) for c in counts if c.count is not None]
    for run in _runs(counted):
        pts = [(x(t), y(v)) for t, v in run]
        if len(pts) == 1:
            chart.dots.append(pts[0])
        else:
            chart.actual.append(_line(pts))
    chart.missing = [
        Slot(x=x(c.hour) - slot_w / 2, width=slot_w, hour=c.hour, status=c.status)
        for c in counts
        if c.count is None
    ]
    chart.band_past = _band(past, x, y)
    chart.band_ahead = _band(ahead, x, y)
    chart.point_past = _points(past, x, y)
    chart.point_ahead = _points(ahead, x, y)
    chart.limits = [
        Limit(name="warn", value=warn, y=y(warn)),
        Limit(name="critical", value=critical, y=y(critical)),
    ]
    chart.markers = [
        Marker(x=x(r.target), y=y(r.expected), level=r.level, target=r.target)
        for r in risks
        if start <= r.target <= last
    ]
    for k in range(0, slots, max(1, tick_every)):
        hour = start + timedelta(hours=k)
        chart.x_ticks.append(Tick(at=x(hour), label=label(hour)))
    chart.y_ticks = [Tick(at=y(y_max * i / 4), label=f"{y_max * i / 4:,.0f}") for i in range(5)]
    if ahead and start <= end <= last + HOUR:
        chart.now_x = x(end) - slot_w / 2
    return chart
