"""SeisFlows version adapters, chosen once at import time from the installed distribution.

The five plugins are written against one contract; where SeisFlows 2.3.1 (PyPI) and 3.x (GitHub
main, e.g. 3.5.6) differ, a mixin from `sf2` or `sf3` sits between the plugin and its SeisFlows
base class (`class EaraGlobe(EaraParameters, SolverCompat, Specfem3DGlobe)`). The science core
never imports SeisFlows. What differs and how each difference is met: docs/seisflows_versions.md.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _installed() -> str:
    try:
        return version("seisflows")
    except PackageNotFoundError as e:      # pragma: no cover - the plugins need SeisFlows
        raise ImportError("seisflows_eara's plugins need SeisFlows 2.3.1 (PyPI) or 3.x "
                          "(GitHub main); neither is installed") from e


#: the installed SeisFlows, e.g. "2.3.1" or "3.5.6"
SEISFLOWS_VERSION = _installed()
#: its major version: 2 or 3
SEISFLOWS_MAJOR = int(SEISFLOWS_VERSION.split(".")[0])

if SEISFLOWS_MAJOR == 2:
    from seisflows_eara.plugins.compat.sf2 import CLI, SolverCompat, WorkflowCompat  # noqa: F401
elif SEISFLOWS_MAJOR == 3:
    from seisflows_eara.plugins.compat.sf3 import CLI, SolverCompat, WorkflowCompat  # noqa: F401
else:
    raise ImportError(f"SeisFlows {SEISFLOWS_VERSION} is installed; seisflows_eara's plugins "
                      "support 2.3.1 and 3.x")

__all__ = ["CLI", "SEISFLOWS_MAJOR", "SEISFLOWS_VERSION", "SolverCompat", "WorkflowCompat"]
