"""Lipschitz-margin training for nsr-tune (Tsuzuku, Sato & Sugiyama, NeurIPS 2018).

Two plugins, found by nsr-tune through entry points once this package is installed
(`pip install -e examples/nsr_tune_lipschitz`):

- objective `lmt` (nsr_tune_lipschitz.objective:lipschitz_margin): cross-entropy on logits whose
  every wrong class is raised by sqrt(2) * c * L, L an upper bound of the network's Lipschitz
  constant. A beat classified with that margin cannot be flipped by any perturbation of L2 norm
  below c, so the model learns margins that hold for every attack, not only for gradient ones;
- model `lipschitz_cnn` (nsr_tune_lipschitz.model:LipschitzCNN): a plain chain of strided
  convolutions and ReLUs with a linear head, whose bound L is the product of its layers'
  spectral norms, each kept up to date by power iteration.
"""

from nsr_tune_lipschitz.model import LipschitzCNN
from nsr_tune_lipschitz.objective import LMTConfig, lipschitz_margin

__all__ = ["LMTConfig", "LipschitzCNN", "lipschitz_margin"]
