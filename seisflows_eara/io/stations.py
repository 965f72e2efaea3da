"""SPECFEM STATIONS files: `STA NET lat lon elevation burial` per line."""
from __future__ import annotations

import os
from dataclasses import dataclass

from seisflows_eara.io.atomic import atomic_write_text


@dataclass(frozen=True)
class Station:
    network: str
    station: str
    latitude: float
    longitude: float
    elevation: float = 0.0
    burial: float = 0.0

    @property
    def code(self) -> str:
        return f"{self.network}.{self.station}"


def read_stations(path: str | os.PathLike) -> list[Station]:
    """Read a STATIONS file; a malformed line raises ValueError naming the file and line."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts or line.lstrip().startswith("#"):
                continue
            try:
                sta, net = parts[0], parts[1]
                lat, lon, elev, bur = (float(x) for x in (parts[2:6] + ["0", "0"])[:4])
            except (IndexError, ValueError) as e:
                raise ValueError(f"{os.fspath(path)}, line {n}: expected 'STA NET lat lon elevation "
                                 f"burial', got {line.strip()!r}") from e
            if not (-90 <= lat <= 90 and -360 <= lon <= 360):
                raise ValueError(f"{os.fspath(path)}, line {n}: station {net}.{sta} has latitude "
                                 f"{lat} / longitude {lon} out of range")
            out.append(Station(net, sta, lat, lon, elev, bur))
    return out


def write_stations(path: str | os.PathLike, stations: list[Station]) -> None:
    """Write a STATIONS file in SPECFEM's column layout (atomically)."""
    atomic_write_text(path, "".join(
        f"{s.station:<10s} {s.network:<5s} {s.latitude:10.4f} {s.longitude:11.4f} "
        f"{s.elevation:8.1f} {s.burial:7.1f}\n" for s in stations))
