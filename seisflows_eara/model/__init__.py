"""SPECFEM3D_GLOBE GLL models, kernels and mesh; STW105 reference; EARA parametrization (SPEC §6)."""
from seisflows_eara.model.gll import (GllFields, concatenate, gll_filename, read_fields, read_gll,
                                      read_kernels, read_model, split, write_fields, write_gll,
                                      write_kernels, write_model)
from seisflows_eara.model.mesh import R_EARTH_KM, Mesh, read_mesh
from seisflows_eara.model.parametrization import (apply_update, kernels_to_gradient,
                                                  model_to_perturbation, perturbation_to_model)
from seisflows_eara.model.reference import stw105_at

__all__ = ["GllFields", "concatenate", "gll_filename", "read_fields", "read_gll", "read_kernels",
           "read_model", "split", "write_fields", "write_gll", "write_kernels", "write_model",
           "R_EARTH_KM", "Mesh", "read_mesh", "apply_update", "kernels_to_gradient",
           "model_to_perturbation", "perturbation_to_model", "stw105_at"]
