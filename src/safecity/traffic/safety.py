"""The harness's safety layer: minimum green, yellow and all-red, legal phase orders.

A controller only names the green phase it wants. :class:`SignalMachine` decides when that
may happen (after the current green's minimum) and how: every link that goes from green to
not-green shows yellow for ``yellow`` seconds, then red for ``all_red`` seconds, before the
next green; links green in both phases stay green. Timings come from the network's program
(``Timing.from_program``) or from RESCO's protocol (``Timing.resco``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from safecity.platform.errors import InvalidInput

DEFAULT_MIN_GREEN = 5.0
GREEN = frozenset("Gg")


def is_green_phase(state: str) -> bool:
    """RESCO's rule: a phase with a green link and no yellow."""
    return any(c in GREEN for c in state) and "y" not in state and "Y" not in state


@dataclass(frozen=True, slots=True)
class Timing:
    """Safety timings of one signal (seconds). ``min_green`` is per green phase."""

    min_green: tuple[float, ...]
    yellow: float
    all_red: float

    def __post_init__(self) -> None:
        if any(g <= 0 for g in self.min_green):
            raise InvalidInput(f"impossible timing: minimum green {self.min_green} must be > 0")
        if self.yellow <= 0:
            raise InvalidInput(f"impossible timing: yellow {self.yellow:g} s must be > 0")
        if self.all_red < 0:
            raise InvalidInput(f"impossible timing: all-red {self.all_red:g} s is negative")

    @property
    def lost_time(self) -> float:
        return self.yellow + self.all_red

    @classmethod
    def from_program(
        cls, phases: Sequence[tuple[str, float, float]], greens: Sequence[int]
    ) -> Timing:
        """From the net's program ``(state, duration, minDur)``: the longest yellow and
        all-red phase of the program, each green's minDur (else 5 s)."""
        yellow = max((d for s, d, _ in phases if "y" in s or "Y" in s), default=3.0)
        all_red = max(
            (d for s, d, _ in phases if not any(c in GREEN or c in "yY" for c in s)),
            default=0.0,
        )
        mins = tuple(
            phases[i][2] if phases[i][2] > 0 else min(DEFAULT_MIN_GREEN, phases[i][1])
            for i in greens
        )
        return cls(mins, yellow, all_red)

    @classmethod
    def resco(cls, n_greens: int, *, decision_s: float, yellow_s: float) -> Timing:
        """RESCO's protocol: yellow_s yellow, no all-red, green >= decision_s - yellow_s."""
        return cls((decision_s - yellow_s,) * n_greens, yellow_s, 0.0)


def yellow_state(current: str, target: str) -> str:
    """Yellow for links green now and not green next; everything else unchanged."""
    return "".join(
        "y" if a in GREEN and b not in GREEN else a for a, b in zip(current, target, strict=True)
    )


def red_state(current: str, target: str) -> str:
    """All-red after the yellow: links leaving green are red, links staying green stay."""
    return "".join(
        "r" if a in GREEN and b not in GREEN else a for a, b in zip(current, target, strict=True)
    )


class SignalMachine:
    """Green -> (yellow -> all-red) -> green, never shortening a green below its minimum."""

    def __init__(self, greens: Sequence[str], timing: Timing, *, start: int, now: float) -> None:
        if not greens:
            raise InvalidInput("a signal needs at least one green phase")
        if len(timing.min_green) != len(greens):
            raise InvalidInput("timing has a different number of greens than the program")
        self.greens = tuple(greens)
        self.timing = timing
        self.green = start
        self.green_since = now
        self._transition: list[tuple[str, float]] = []  # (state, shown until)

    @property
    def in_transition(self) -> bool:
        return bool(self._transition)

    def can_switch(self, now: float) -> bool:
        """True in a green that has lasted its minimum."""
        return (
            not self._transition
            and now - self.green_since >= self.timing.min_green[self.green] - 1e-9
        )

    def time_in_green(self, now: float) -> float:
        return 0.0 if self._transition else now - self.green_since

    def request(self, target: int, now: float) -> bool:
        """Start the change to green ``target``; False when it is not allowed now."""
        if not 0 <= target < len(self.greens):
            raise InvalidInput(f"green phase {target} does not exist ({len(self.greens)} greens)")
        if target == self.green or not self.can_switch(now):
            return False
        cur, nxt = self.greens[self.green], self.greens[target]
        until = now + self.timing.yellow
        steps = [(yellow_state(cur, nxt), until)]
        if self.timing.all_red > 0:
            until += self.timing.all_red
            steps.append((red_state(cur, nxt), until))
        self._transition = steps
        self.green = target
        return True

    def state(self, now: float) -> str:
        """The state string to show at ``now`` (advances through the transition)."""
        while self._transition and now >= self._transition[0][1] - 1e-9:
            _, ended = self._transition.pop(0)
            if not self._transition:
                self.green_since = ended
        if self._transition:
            return self._transition[0][0]
        return self.greens[self.green]
