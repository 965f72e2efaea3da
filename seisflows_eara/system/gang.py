"""Several events' simulations launched together (SPECFEM's NUMBER_OF_SIMULTANEOUS_RUNS, SPEC §8).

One task owns a bundle of events and runs each event's step in its own thread. When an event's
step reaches a solver launch it calls :meth:`Gang.run` and waits; as soon as every event still at
work is waiting, the waiting launches are handed to `launch` together (grouped by binary), which
starts ONE program run for the group. An event whose step needs no launch, finishes or fails
leaves the gang (:meth:`Gang.leave`), so the others never wait for it.

Nothing here knows about SPECFEM or SeisFlows: a launch is (binary, key, payload) and `launch`
returns one exception (or None) per key.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Hashable, Iterable, Mapping


class Gang:
    """Rendezvous of the members' launches; `launch(binary, {key: payload})` -> {key: error}."""

    def __init__(self, members: Iterable[Hashable],
                 launch: Callable[[str, Mapping[Hashable, Any]], Mapping[Hashable, BaseException | None]]):
        self._cv = threading.Condition()
        self._order = {key: i for i, key in enumerate(members)}   # launches list keys this way
        self._active = set(self._order)
        self._waiting: dict[Hashable, tuple[str, Any]] = {}
        self._results: dict[Hashable, BaseException | None] = {}
        self._launch = launch
        #: (binary, keys) of every launch, in order (what the tests count)
        self.launches: list[tuple[str, tuple]] = []

    def run(self, key: Hashable, binary: str, payload: Any) -> None:
        """Wait until every active member waits, launch together, re-raise this member's error."""
        with self._cv:
            if key not in self._active:
                raise RuntimeError(f"{key} is not an active member of the gang")
            self._waiting[key] = (binary, payload)
            self._release()
            while key not in self._results:
                self._cv.wait()
            error = self._results.pop(key)
        if error is not None:
            raise error

    def leave(self, key: Hashable) -> None:
        """`key` needs no more launches (its step finished or failed)."""
        with self._cv:
            self._active.discard(key)
            self._release()

    def _release(self) -> None:
        """Called with the lock held: launch when all active members wait."""
        if not self._waiting or set(self._waiting) != self._active:
            return
        batch, self._waiting = self._waiting, {}
        by_binary: dict[str, dict] = {}
        for key, (binary, payload) in sorted(batch.items(), key=lambda kv: self._order[kv[0]]):
            by_binary.setdefault(binary, {})[key] = payload
        for binary, group in by_binary.items():
            self.launches.append((binary, tuple(group)))
            try:
                errors = dict(self._launch(binary, group))
            except BaseException as e:      # the launcher itself failed: every member hears it
                errors = {k: e for k in group}
            for key in group:
                self._results[key] = errors.get(key)
        self._cv.notify_all()
