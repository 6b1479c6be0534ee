"""opdoc: generated op-docs for PyTorch modules, every number computed from checked formulas."""

__version__ = "0.1.0"
