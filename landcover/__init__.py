"""landcover: Landsat time series to land-cover maps.

Only the version lives here; nothing heavy (no TensorFlow, no rasterio) is imported at package import.
"""

import os

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) would drown our stderr; users can
# still set their own level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
