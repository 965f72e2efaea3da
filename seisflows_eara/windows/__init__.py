"""Predicted-traveltime windows in six categories (SPEC §3, paper §2.3)."""
from seisflows_eara.windows.picking import (BODY_CATEGORIES, SURFACE_CATEGORIES, Window,
                                            body_windows, merge_intervals, noise_window,
                                            surface_windows)
from seisflows_eara.windows.traveltimes import TravelTimes

__all__ = ["BODY_CATEGORIES", "SURFACE_CATEGORIES", "TravelTimes", "Window", "body_windows",
           "merge_intervals", "noise_window", "surface_windows"]
