"""Thin SeisFlows plugins (2.3.1 and 3.x; per-version adapters in compat/): they adapt the science
core to SeisFlows' module contracts and own all file I/O and job submission. SeisFlows finds them
through the shims in ../sfplugins."""
