"""SPECFEM3D_GLOBE GLL models, kernels and mesh; STW105 reference; EARA parametrization (SPEC §6)."""
from seisflows_eara.model.gll import (GllFields, gll_filename, read_fields, read_gll, write_fields,
                                      write_gll)
from seisflows_eara.model.mesh import Mesh, read_mesh

__all__ = ["GllFields", "gll_filename", "read_fields", "read_gll", "write_fields", "write_gll",
           "Mesh", "read_mesh"]
