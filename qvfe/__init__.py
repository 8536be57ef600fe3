"""qvfe: variational free energies of quantum many-body systems with generative models."""
__version__ = "0.1.0"
