"""The EARA iteration schedule and the resumable workflow state (SPEC §1, §5, §6, §8).

A run is a flat, deterministic list of steps built from parameters.yaml: per stage, source
iterations (forward, source adjoint, perturbed forward, Bayesian line search) and then structure
iterations (forward with saved wavefield, kernel run, kernel processing + direction, one trial
forward, line search + model update), and a closing forward that measures the final model.
The state file records completed steps and, within a simulation step, the events already finished,
so a resumed run repeats no finished simulation. It is replaced atomically after every change.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

from seisflows_eara.io.atomic import atomic_write_text

SOURCE_TASKS = ("forward", "source_adjoint", "perturbed_forward", "source_update")
STRUCTURE_TASKS = ("forward", "kernel", "direction", "trial_forward", "model_update")
#: tasks that run one solver simulation per event
SIMULATION_TASKS = frozenset({"forward", "source_adjoint", "perturbed_forward", "kernel",
                              "trial_forward", "final_forward"})


@dataclass(frozen=True)
class Step:
    """One workflow step. `iteration` counts within its stage and kind (1-based);
    `structure_index` counts structure iterations over the whole run (the smoothing schedule)."""
    stage: int
    kind: str              # "source" | "structure" | "final"
    iteration: int
    task: str
    structure_index: int = 0

    @property
    def key(self) -> str:
        if self.kind == "final":
            return f"stage{self.stage}/final/{self.task}"
        return f"stage{self.stage}/{self.kind}{self.iteration:02d}/{self.task}"

    @property
    def is_simulation(self) -> bool:
        return self.task in SIMULATION_TASKS

    def sibling(self, task: str) -> "Step":
        """Another task of the same iteration (e.g. the forward whose windows a line search uses)."""
        return Step(self.stage, self.kind, self.iteration, task, self.structure_index)


def plan(values: dict[str, Any]) -> list[Step]:
    """All steps of a run, in order, from the stage schedule in `values` (params.py keys)."""
    steps: list[Step] = []
    nstage = len(values["stage_body_bands"])
    structure_index = 0
    for s in range(1, nstage + 1):
        for k in range(1, values["stage_source_iterations"][s - 1] + 1):
            steps += [Step(s, "source", k, t) for t in SOURCE_TASKS]
        for j in range(1, values["stage_structure_iterations"][s - 1] + 1):
            structure_index += 1
            steps += [Step(s, "structure", j, t, structure_index) for t in STRUCTURE_TASKS]
    steps.append(Step(nstage, "final", 0, "final_forward", structure_index))
    return steps


def simulations_per_event(values: dict[str, Any]) -> int:
    """Solver runs per event over the whole schedule: 3 per source and 3 per structure iteration, + 1."""
    return sum(1 for s in plan(values) if s.is_simulation)


@dataclass
class WorkflowState:
    """Completed steps and free-form records (misfit history, accepted step lengths), written only
    by the master process. Saved as JSON, atomically. Events finished inside a simulation step are
    recorded by the tasks themselves as one marker file each (EventMarkers): parallel tasks never
    write the same file."""
    path: str
    completed: list[str] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WorkflowState":
        path = os.fspath(path)
        if not os.path.exists(path):
            return cls(path)
        try:
            with open(path) as f:
                raw = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise RuntimeError(f"workflow state file {path!r} is unreadable ({e}); it is written "
                               "atomically, so this file was edited or damaged by hand") from e
        return cls(path, list(raw.get("completed", [])), dict(raw.get("records", {})))

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(
            {"completed": self.completed, "records": self.records}, indent=1, sort_keys=True))

    def is_done(self, step: Step) -> bool:
        return step.key in self.completed

    def mark_done(self, step: Step) -> None:
        if step.key not in self.completed:
            self.completed.append(step.key)
        self.save()

    def pending(self, steps: list[Step]) -> Iterator[Step]:
        """Steps not yet completed, in order."""
        return (s for s in steps if not self.is_done(s))


@dataclass(frozen=True)
class EventMarkers:
    """One empty file per (step, event) under `root`, written by the task that finished it."""
    root: str

    def _path(self, step: Step, event: str) -> str:
        return os.path.join(self.root, step.key, f"{event}.done")

    def done(self, step: Step, event: str) -> bool:
        return os.path.exists(self._path(step, event))

    def mark(self, step: Step, event: str) -> None:
        atomic_write_text(self._path(step, event), "")

    def unmark(self, step: Step, event: str) -> None:
        """Forget that `event` finished `step` (its output is found to belong to another trial)."""
        if os.path.exists(self._path(step, event)):
            os.remove(self._path(step, event))

    def clear(self, step: Step) -> None:
        """Forget which events finished `step` (a line-search retry repeats its trial forward)."""
        folder = os.path.join(self.root, step.key)
        if os.path.isdir(folder):
            for f in os.listdir(folder):
                os.remove(os.path.join(folder, f))

    def events(self, step: Step) -> list[str]:
        folder = os.path.join(self.root, step.key)
        if not os.path.isdir(folder):
            return []
        return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".done"))
