"""seisflows_eara: the EARA2024 adjoint tomography (Xi et al., GJI 2024) as SeisFlows plugins.

The science core (processing, windows, misfit, weights, source, optimize, model, assess) imports
nothing from SeisFlows; seisflows_eara.plugins adapts it to SeisFlows 2.3.1.
"""
__version__ = "0.1.0"
