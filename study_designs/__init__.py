"""Declarative study designs (TOML) shared by the app, the sampler and the analysis."""

from study_designs.schema import Design, DesignError, Page, load_design

__all__ = ["Design", "DesignError", "Page", "load_design"]
