"""MLflow runs this file to build the CAR pyfunc model (models from code, car/outputs/mlflow_model.py)."""

from mlflow.models import set_model

from car.outputs.mlflow_model import CARPyfunc

set_model(CARPyfunc())
