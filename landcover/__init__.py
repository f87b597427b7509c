"""landcover: Landsat time series to land-cover maps.

Only the version lives here; nothing heavy (no TensorFlow, no rasterio) is imported at package import.
"""

__version__ = "0.1.0"
