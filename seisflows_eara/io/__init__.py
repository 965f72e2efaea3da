"""Readers and writers of SPECFEM and seismological files (no SeisFlows imports)."""
