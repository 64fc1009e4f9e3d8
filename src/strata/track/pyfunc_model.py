"""The MLflow pyfunc wrapper of a Strata bundle, logged with MLflow's models-from-code: MLflow runs
this file to rebuild the model, so loading a registered model unpickles nothing. The weights come
from safetensors and the preprocessing from JSON, as with `strata.load`.

    mlflow.set_tracking_uri("sqlite:///strata-runs/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/penguins@production")
    model.predict(frame)   # a DataFrame: prediction, proba_<class>...
"""

import mlflow.pyfunc
import pandas as pd
from mlflow.models import set_model


class StrataModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        import strata

        self.model = strata.load(context.artifacts["bundle"])

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params=None
    ) -> pd.DataFrame:
        return self.model.predict_frame(model_input).reset_index(drop=True)


set_model(StrataModel())
