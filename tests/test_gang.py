"""seisflows_eara.system.gang: bundled events' launches start together (NUMBER_OF_SIMULTANEOUS_RUNS)."""
from __future__ import annotations

import threading
import time

import pytest

from seisflows_eara.system.gang import Gang


def _members(gang: Gang, plans: dict) -> dict:
    """Run each member's plan (a list of binaries to launch, or an exception to raise after the
    launches) in its own thread; returns what each member saw."""
    seen: dict = {}

    def member(key):
        try:
            for item in plans[key]:
                if isinstance(item, Exception):
                    raise item
                time.sleep(0.01 * len(key))          # members arrive at different times
                gang.run(key, item, f"{key}-payload")
            seen[key] = "done"
        except Exception as e:
            seen[key] = e
        finally:
            gang.leave(key)

    threads = [threading.Thread(target=member, args=(k,)) for k in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads), "a member hangs"
    return seen


def test_launches_wait_for_every_active_member_and_group_by_binary():
    calls = []

    def launch(binary, group):
        calls.append((binary, dict(group)))
        return {k: None for k in group}

    gang = Gang(["ccc", "a", "bb"], launch)      # ccc arrives last but is listed first
    seen = _members(gang, {"a": ["fwd", "adj"], "bb": ["fwd", "adj"], "ccc": ["fwd"]})
    assert seen == {"a": "done", "bb": "done", "ccc": "done"}
    # the first launch holds all three; the second the two that still need one (ccc left)
    assert calls[0] == ("fwd", {"a": "a-payload", "bb": "bb-payload", "ccc": "ccc-payload"})
    assert gang.launches[0] == ("fwd", ("ccc", "a", "bb"))   # the members' order
    assert calls[1] == ("adj", {"a": "a-payload", "bb": "bb-payload"})
    assert len(calls) == 2


def test_a_member_without_launches_or_failing_never_blocks_the_others():
    def launch(binary, group):
        return {k: (RuntimeError(f"{binary} failed for {k}") if k == "bb" else None) for k in group}

    gang = Gang(["a", "bb", "ccc", "dddd"], launch)
    seen = _members(gang, {"a": ["fwd"], "bb": ["fwd", "fwd"], "ccc": [],
                           "dddd": [ValueError("no observed data")]})
    assert seen["a"] == "done" and seen["ccc"] == "done"
    assert isinstance(seen["bb"], RuntimeError) and "fwd failed for bb" in str(seen["bb"])
    assert isinstance(seen["dddd"], ValueError)
    assert gang.launches == [("fwd", ("a", "bb"))]         # bb's second launch: never


def test_different_binaries_waiting_at_once_run_as_separate_launches():
    gang = Gang(["a", "bb"], lambda binary, group: {k: None for k in group})
    seen = _members(gang, {"a": ["type1"], "bb": ["type3"]})
    assert seen == {"a": "done", "bb": "done"}
    assert sorted(gang.launches) == [("type1", ("a",)), ("type3", ("bb",))]


def test_a_launcher_that_raises_reaches_every_member():
    def launch(binary, group):
        raise OSError("mpiexec not found")

    gang = Gang(["a", "bb"], launch)
    seen = _members(gang, {"a": ["fwd"], "bb": ["fwd"]})
    assert all(isinstance(seen[k], OSError) for k in ("a", "bb"))
    with pytest.raises(RuntimeError, match="not an active member"):
        gang.run("a", "fwd", None)
