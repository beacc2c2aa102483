"""churn: point-in-time churn features, calibrated LightGBM risk and budgeted retention plans."""

import os

# Compiled (numba) passes can run on two threads at once: the feature build's background thread and the
# main one. numba must then use a thread-safe layer (GNU OpenMP, which LightGBM needs anyway, or TBB),
# never its workqueue, which aborts the process on concurrent use. Read when numba is first imported.
os.environ.setdefault("NUMBA_THREADING_LAYER", "threadsafe")

__version__ = "0.1.0"
