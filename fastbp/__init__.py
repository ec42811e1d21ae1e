"""fastbp: fast CPU training of fully-connected feedforward networks by backpropagation.

``fastbp.Network`` trains with compiled (Numba) kernels; ``fastbp.reference`` is the
plain NumPy implementation of the same algorithm; ``fastbp.MLPClassifier`` and
``fastbp.MLPRegressor`` are drop-in replacements for scikit-learn's estimators (they
need scikit-learn, an optional dependency).
"""
from . import reference
from ._engine import TrainingDiverged
from .network import Network

__version__ = "0.1.0"
__all__ = ["Network", "TrainingDiverged", "reference", "MLPClassifier", "MLPRegressor"]


def __getattr__(name):
    if name in ("MLPClassifier", "MLPRegressor"):
        try:
            from . import _sklearn
        except ImportError as exc:
            if "sklearn" not in str(exc):
                raise
            raise ImportError(
                f"fastbp.{name} needs scikit-learn: pip install 'fastbp[sklearn]'") from exc
        return getattr(_sklearn, name)
    raise AttributeError(f"module 'fastbp' has no attribute {name!r}")
