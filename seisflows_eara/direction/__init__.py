"""The structure direction as a slice-parallel job (SPEC §6; `seisflows-eara direction`)."""
from seisflows_eara.direction.comm import DirectionJobError, SerialComm, my_slices, world
from seisflows_eara.direction.engine import (DirectionInputs, EventInput, run_direction,
                                             run_finish, run_gradient, run_steepest, run_update)
from seisflows_eara.direction.slices import SliceInputError

__all__ = ["DirectionJobError", "SerialComm", "my_slices", "world", "DirectionInputs",
           "EventInput", "run_direction", "run_finish", "run_gradient", "run_steepest",
           "run_update", "SliceInputError"]
