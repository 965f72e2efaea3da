"""Model assessment: figures and derived quantities (SPEC §7, paper §3)."""
