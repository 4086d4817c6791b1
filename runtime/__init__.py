"""The runtime: loads an artifact and runs it. Knows nothing of Keras; never imports the compiler."""
from .model import CompiledModel, load

__all__ = ["CompiledModel", "load"]
