"""Optax-style gradient transformations: natural gradient (SR) and local-energy clipping.

- :func:`sr` — ``δ = (S + λ)⁻¹ g`` with the centred Fisher / real-QGT metric from per-sample
  log-derivatives passed as ``update(..., jacobian=O)``; same sign as ``g``.
- :func:`sr_blocks` — independent SR per labelled block (φ: Fisher, θ: QGT).
- :func:`sr_then_lr` — ``chain(sr, scale_by_learning_rate(lr))``, a descent step.
- :func:`clip_local_energy` — median ± width·MAD clipping, for gradients only.
"""

from qvfe.optim.clipping import clip_local_energy
from qvfe.optim.sr import centred_jacobian, sr, sr_blocks, sr_then_lr

__all__ = ["centred_jacobian", "clip_local_energy", "sr", "sr_blocks", "sr_then_lr"]
