"""The tree of work whose fraction a progress stream shows (pure: no I/O, no clock).

A `Composite` is the weighted sum of its parts (the handlers of an action, the scopes of one
handler); a `Scope` has declared steps (`total`, `done`) and its nested scopes subdivide the
step in hand. `Work` is either. The runner folds a handler's scopes into one tree per action
execution; the workspace manager keeps the very same `Scope` one level up for each child
execution.
"""

from __future__ import annotations

__all__ = ["Composite", "Scope", "Work"]


class Scope:
    """Work with declared steps (`total`, `done`), or a fraction reported directly (`hint`).

    Nested scopes subdivide the step in hand: while one is open its fraction is added to `done`;
    when it ends its share leaves, and the scope's own `done` is expected to advance instead.
    A total of 0 is work already done.
    """

    __slots__ = ("_nested", "done", "ended", "hint", "parent", "total")

    def __init__(self, total: float | None = None, parent: Composite | Scope | None = None) -> None:
        self.total = total
        self.done = 0.0
        self.hint: float | None = None  # a fraction reported directly, for work without total
        self.ended = False
        self.parent = parent
        self._nested: list[Scope | Composite] = []

    def add(self, *, total: float | None = None) -> Scope:
        """Open a nested scope within the step in hand."""
        nested = Scope(total, self)
        self._nested.append(nested)
        return nested

    def finish(self, *, abandoned: bool = False) -> None:
        """End this work. Abandoned (cancelled) work keeps only the progress it made."""
        _finish(self, abandoned)

    def part_ended(self, part: Scope | Composite, kept: float) -> None:
        """A nested scope ended: its share leaves until this scope advances."""
        self._nested.remove(part)

    def set_total(self, total: float) -> None:
        """Declare (or correct) the steps this work has."""
        self.total = total

    def set_done(self, done: float) -> None:
        """`done` steps are done (never more than the total, when there is one)."""
        self.done = done if self.total is None else min(done, self.total)

    def set_fraction(self, fraction: float) -> None:
        """Record progress given as a fraction (an explicit percentage)."""
        fraction = min(1.0, max(0.0, fraction))
        if self.total is not None:
            self.done = fraction * self.total
        else:
            self.hint = fraction

    def units(self) -> float | None:
        """Declared work, in the units of its source; None when not declared."""
        return self.total

    def fraction(self) -> float | None:
        """How much is done, in 0..1; None when not measurable."""
        if self.ended:
            return 1.0
        if self.total is None:
            return self.hint
        if self.total <= 0:
            return 1.0
        done = self.done
        for nested in self._nested:
            done += nested.fraction() or 0.0
        return min(1.0, max(0.0, done / self.total))


class Composite:
    """The weighted sum of its parts: the handlers of an action, the scopes of one handler.

    A part weighs its declared units; a part whose units are not known (yet) weighs the mean of
    the known positive ones (1 when none is known), so that the count of parts is the measure
    until totals arrive and declared totals refine it as they do. A total of 0 is work already
    done: it weighs nothing and never drags that mean down. `expected` parts not added yet
    count as unknown ones.
    """

    __slots__ = (
        "_active",
        "_ended_known",
        "_ended_known_done",
        "_ended_known_units",
        "_ended_positive",
        "_ended_unknown",
        "_ended_unknown_done",
        "ended",
        "expected",
        "parent",
    )

    def __init__(self, expected: int = 0, parent: Composite | None = None) -> None:
        self.expected = expected
        self.ended = False
        self.parent = parent
        self._active: list[Scope | Composite] = []
        # Ended parts are folded into counters so that a loop opening a scope per item keeps
        # memory flat.
        self._ended_known = 0
        self._ended_known_units = 0.0
        self._ended_known_done = 0.0
        self._ended_positive = 0  # ended parts with units > 0: they set the mean
        self._ended_unknown = 0
        self._ended_unknown_done = 0.0  # in parts: fractions of the mean weight

    def add(self, *, total: float | None = None) -> Scope:
        """Start a part with declared steps."""
        part = Scope(total, self)
        self._active.append(part)
        return part

    def add_composite(self, *, expected: int = 0) -> Composite:
        """Start a part that is itself a sum of parts (one handler's scopes)."""
        part = Composite(expected, self)
        self._active.append(part)
        return part

    def finish(self, *, abandoned: bool = False) -> None:
        """End this work. Abandoned (cancelled) work keeps only the progress it made."""
        _finish(self, abandoned)

    def part_ended(self, part: Scope | Composite, kept: float) -> None:
        """A part ended: it keeps its weight, with `kept` of it done."""
        self._active.remove(part)
        units = part.units()
        if units is None:
            self._ended_unknown += 1
            self._ended_unknown_done += kept
        else:
            self._ended_known += 1
            self._ended_positive += units > 0
            self._ended_known_units += units
            self._ended_known_done += units * kept

    def _parts(self) -> tuple[float, float, int, int]:
        """(weight sum, weighted done, parts count, known count)."""
        known_units = self._ended_known_units
        known = self._ended_known
        positive = self._ended_positive
        measured: list[tuple[float | None, float | None]] = []
        for part in self._active:
            units = part.units()
            if units is not None:
                known_units += units
                known += 1
                positive += units > 0
            measured.append((units, part.fraction()))
        count = self._ended_known + self._ended_unknown + len(self._active)
        placeholders = max(0, self.expected - count)
        count += placeholders
        mean = known_units / positive if positive else 1.0
        weight = self._ended_known_units + (self._ended_unknown + placeholders) * mean
        done = self._ended_known_done + self._ended_unknown_done * mean
        for units, fraction in measured:
            w = mean if units is None else units
            weight += w
            done += w * (fraction or 0.0)
        return weight, done, count, known

    def units(self) -> float | None:
        """Declared work, in the units of its sources; None when nothing is measurable."""
        weight, _, count, known = self._parts()
        return weight if known or count >= 2 else None

    def fraction(self) -> float | None:
        """How much is done, in 0..1; None when not measurable."""
        if self.ended:
            return 1.0
        weight, done, count, known = self._parts()
        if not known and count < 2:
            return self._active[0].fraction() if count == 1 and self._active else None
        return min(1.0, done / weight) if weight > 0 else 0.0


Work = Scope | Composite  # any node of the tree


def _finish(node: Work, abandoned: bool) -> None:
    """End a node once; its parent learns how much of it was done (all, unless abandoned)."""
    if node.ended:
        return
    kept = (node.fraction() or 0.0) if abandoned else 1.0
    node.ended = True
    if node.parent is not None:
        node.parent.part_ended(node, kept)
