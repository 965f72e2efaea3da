"""The per-event measurement chain and its table (SPEC §2-4)."""
from seisflows_eara.measure.event import (COLUMNS, Config, EventInfo, EventMeasurement,
                                          PreparedEvent, combine_adjoint, event_from_file,
                                          measure_event, observed_parameters, prepare_event)
from seisflows_eara.measure.prepared import PreparedObserved, read_prepared
from seisflows_eara.measure.progress import progress_logger

__all__ = ["COLUMNS", "Config", "EventInfo", "EventMeasurement", "PreparedEvent",
           "combine_adjoint", "event_from_file", "measure_event", "observed_parameters",
           "prepare_event", "PreparedObserved", "read_prepared", "progress_logger"]
