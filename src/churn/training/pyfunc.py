"""The MLflow pyfunc wrapper: `predict` returns the 1-D calibrated churn probability.

The lightgbm flavour's pyfunc returns labels and a pandas `category` column breaks signature enforcement,
so the model is logged as a custom PythonModel whose artifact is the pickled ChurnModel (protocol 5). The
PythonModel carries that file's sha256, and `load_context` reads the file once, checks those bytes and
unpickles them with churn's allow-list (`churn.training.safe_pickle`), never with plain joblib or pickle. Its
signature names every input column but types them `Any`: the model's fitted preparation reads the raw
values exactly as `churn score --table` does (yes/no text, integers, numbers written as text, categories)
and names any column it cannot read, so MLflow's stricter type enforcement (which refuses int64 where it
expects double) would only reject rows the scorer accepts.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, Schema

from churn.errors import ChurnError
from churn.training.model import ChurnModel, library_versions
from churn.training.safe_pickle import dump_model, load_model_bytes, read_verified, sha256_hex

MODEL_ARTIFACT = "churn_model"
MODEL_FILE = "model.joblib"


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the ChurnModel from the `churn_model` artifact; `predict` gives P(churn) per row.

    `model_sha256` is the artifact's sha256 when it was logged (None in models logged before it was kept:
    those are only unpickled with the allow-list)."""

    def __init__(self, model_sha256: str | None = None):
        self.model_sha256 = model_sha256

    def load_context(self, context: Any) -> None:
        """Read the artifact once, check it against `model_sha256` and unpickle those bytes, restricted."""
        path = Path(context.artifacts[MODEL_ARTIFACT])
        digest = getattr(self, "model_sha256", None)
        if digest:
            data = read_verified(path, digest)
        else:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ChurnError(f"{path}: cannot read the model file ({exc})") from None
        model = load_model_bytes(data, str(path))
        if not isinstance(model, ChurnModel):
            raise ChurnError(f"{path} does not hold a ChurnModel (found {type(model).__name__})")
        self.model: ChurnModel = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        """Calibrated P(churn), one float per input row."""
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return np.asarray(self.model.predict_risk(model_input), dtype="float64")


def model_signature(model: ChurnModel) -> ModelSignature:
    """Inputs: one column per feature, any type (the preparation reads them); output: a double."""
    cols = [ColSpec(AnyType(), f.name, required=True) for f in model.features_]
    return ModelSignature(inputs=Schema(cols), outputs=Schema([ColSpec("double", "churn_probability")]))


def pip_requirements() -> list[str]:
    """Pinned runtime requirements (skips MLflow's slow environment inference). The churn package itself
    must be importable where the model is loaded: the pickled ChurnModel class lives in it."""
    v = library_versions()
    return [f"mlflow=={mlflow.__version__}", f"lightgbm=={v['lightgbm']}", f"scikit-learn=={v['scikit-learn']}",
            f"pandas=={v['pandas']}", f"numpy=={v['numpy']}", f"joblib=={v['joblib']}"]


def log_pyfunc(model: ChurnModel, *, name: str = "model", registered_model_name: str | None = None) -> Any:
    """Log `model` as a pyfunc in the active run (and register it); returns MLflow's ModelInfo."""
    quiet = logging.getLogger("mlflow.pyfunc")  # its "python_model is cloudpickled" notice: ours is a class
    level = quiet.level                         # reference to an importable module, nothing to warn about
    quiet.setLevel(logging.ERROR)
    try:
        return _log(model, name, registered_model_name)
    finally:
        quiet.setLevel(level)


def _log(model: ChurnModel, name: str, registered_model_name: str | None) -> Any:
    with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
        path = Path(tmp) / MODEL_FILE
        data = dump_model(model)
        path.write_bytes(data)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=ChurnPyfunc(model_sha256=sha256_hex(data)),
            artifacts={MODEL_ARTIFACT: str(path)},
            signature=model_signature(model),
            pip_requirements=pip_requirements(),
            registered_model_name=registered_model_name,
        )
