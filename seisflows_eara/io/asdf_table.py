"""The measurement table kept with the data in ASDF (issue 4 item 4): auxiliary data of type
`EaraMeasurements`, one entry per event and stage, holding the table's CSV bytes (lossless,
readable without this package: `bytes(ds.auxiliary_data.EaraMeasurements[path].data[:])`) with
its parameters (event, stage, misfit, window counts, program version), and the event itself as
QuakeML. pyasdf does the storage; the file is written under a temporary name and renamed."""
from __future__ import annotations

import io
import os
import re

import numpy as np
import pandas as pd

#: ASDF auxiliary data type of the measurement tables
DATA_TYPE = "EaraMeasurements"


def table_path(event: str, stage: int) -> str:
    """Auxiliary-data path of one event's table (ASDF paths allow [A-Za-z0-9_])."""
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', event)}_stage{int(stage)}"


def write_table_asdf(path: str | os.PathLike, table: pd.DataFrame, event: str, stage: int,
                     misfit: float, event_file: str | None = None) -> None:
    """Write `table` (and the event of `event_file`, CMTSOLUTION or QuakeML) to a new ASDF file."""
    import obspy
    import pyasdf
    from seisflows_eara import __version__
    path = os.fspath(path)
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    buf = io.StringIO()
    table.to_csv(buf, index=False, float_format="%.10g")
    data = np.frombuffer(buf.getvalue().encode(), dtype=np.uint8)
    kept = int((table.status == "ok").sum()) if "status" in table else len(table)
    with pyasdf.ASDFDataSet(tmp, mode="w", compression="gzip-3") as ds:
        if event_file:
            ds.add_quakeml(obspy.read_events(event_file))
        ds.add_auxiliary_data(data=data, data_type=DATA_TYPE, path=table_path(event, stage),
                              parameters=dict(format="csv", event=event, stage=int(stage),
                                              misfit=float(misfit), windows_kept=kept,
                                              rows=len(table), program=f"seisflows_eara {__version__}"))
    os.replace(tmp, path)


def read_table_asdf(path: str | os.PathLike, event: str, stage: int) -> tuple[pd.DataFrame, dict]:
    """The table and its parameters written by write_table_asdf."""
    import pyasdf
    with pyasdf.ASDFDataSet(os.fspath(path), mode="r") as ds:
        try:
            aux = ds.auxiliary_data[DATA_TYPE][table_path(event, stage)]
        except (KeyError, AttributeError) as e:
            raise KeyError(f"{path}: no {DATA_TYPE}/{table_path(event, stage)}") from e
        text = bytes(np.asarray(aux.data)).decode()
        parameters = dict(aux.parameters)
    return pd.read_csv(io.StringIO(text)), parameters
