"""Science-free job handling for clusters (no SeisFlows imports): see :mod:`.slurm`."""
from seisflows_eara.system.slurm import (
    PRESETS, TASK_TYPES, SlurmError, SlurmRunner, SlurmSite, TaskFailure, TaskFailureError,
    batch_script, bundles, master_script, site_from_values,
)

__all__ = ["PRESETS", "TASK_TYPES", "SlurmError", "SlurmRunner", "SlurmSite", "TaskFailure",
           "TaskFailureError", "batch_script", "bundles", "master_script", "site_from_values"]
