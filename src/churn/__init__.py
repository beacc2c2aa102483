"""churn: point-in-time churn features, calibrated LightGBM risk and budgeted retention plans."""

__version__ = "0.1.0"
