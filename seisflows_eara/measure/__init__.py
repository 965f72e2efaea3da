"""The per-event measurement chain and its table (SPEC §2-4)."""
from seisflows_eara.measure.event import (COLUMNS, Config, EventInfo, EventMeasurement,
                                          PreparedEvent, combine_adjoint, event_from_file,
                                          measure_event)

__all__ = ["COLUMNS", "Config", "EventInfo", "EventMeasurement", "PreparedEvent",
           "combine_adjoint", "event_from_file", "measure_event"]
