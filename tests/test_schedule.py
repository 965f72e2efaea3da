"""The EARA schedule: step counts per stage and the simulation accounting (SPEC §1, §6)."""
import json

import pytest

from seisflows_eara import params
from seisflows_eara.schedule import EventMarkers, Step, WorkflowState, plan, simulations_per_event


def test_default_schedule_matches_the_paper():
    v = params.defaults()
    steps = plan(v)
    src = {(s.stage, s.iteration) for s in steps if s.kind == "source"}
    st = {(s.stage, s.iteration) for s in steps if s.kind == "structure"}
    assert len(src) == 9 and len(st) == 30          # 3 x 3 source, 3 x 10 structure iterations
    # 3 solver runs per event per iteration (both kinds) + one final forward
    assert simulations_per_event(v) == 3 * 9 + 3 * 30 + 1
    # smoothing phases follow the whole-run structure index: 5 iterations at 50/25 km, then 25/10
    idx = sorted({s.structure_index for s in steps if s.kind == "structure"})
    assert idx == list(range(1, 31))
    assert [params.smoothing_for_iteration(v, i) for i in (5, 6)] == [(50.0, 25.0), (25.0, 10.0)]
    assert len({s.key for s in steps}) == len(steps)


def test_small_schedule_order():
    v = params.defaults()
    v.update(stage_body_bands=[[10.0, 40.0]], stage_surface_bands=[[40.0, 120.0]],
             stage_source_iterations=[1], stage_structure_iterations=[2])
    keys = [s.key for s in plan(v)]
    assert keys[:4] == ["stage1/source01/forward", "stage1/source01/source_adjoint",
                        "stage1/source01/perturbed_forward", "stage1/source01/source_update"]
    assert keys[4] == "stage1/structure01/forward" and keys[-1] == "stage1/final/final_forward"
    assert simulations_per_event(v) == 3 + 6 + 1


def test_state_resume_and_markers(tmp_path):
    v = params.defaults()
    steps = plan(v)
    st = WorkflowState.load(tmp_path / "state.json")
    st.mark_done(steps[0])
    st.records["misfit"] = [1.0]
    st.save()
    again = WorkflowState.load(tmp_path / "state.json")
    assert next(again.pending(steps)) == steps[1] and again.records["misfit"] == [1.0]
    m = EventMarkers(str(tmp_path / "markers"))
    m.mark(steps[1], "C201009031635A")
    assert m.done(steps[1], "C201009031635A") and not m.done(steps[1], "other")
    assert m.events(steps[1]) == ["C201009031635A"]


def test_damaged_state_file_is_named(tmp_path):
    p = tmp_path / "state.json"
    p.write_text("{not json")
    with pytest.raises(RuntimeError, match="state.json"):
        WorkflowState.load(p)
