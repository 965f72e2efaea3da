"""Thin SeisFlows 2.3.1 plugins: they adapt the science core to SeisFlows' module contracts and own
all file I/O and job submission. SeisFlows finds them through the shims in ../sfplugins."""
