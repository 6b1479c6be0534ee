"""Model packages: everything opdoc knows about one model (reference modules, harness builders, upstream loading)."""
