"""The URCDC-Depth network: Swin + NeWCRF Transformer branch, DenseNet + GLP CNN branch, coupling units."""
from .config import DGR_POSITIONS, VARIANTS, ModelConfig
from .urcdc import URCDCDepth, build_model, with_zero_initialised_weights

__all__ = ["DGR_POSITIONS", "VARIANTS", "ModelConfig", "URCDCDepth", "build_model"]
