"""The model-from-code file MLflow logs with every fsml model (see ``fsml.pyfunc``).

MLflow runs this file when it loads the model; importing it anywhere else does nothing more
than declare the model object.
"""

import mlflow

from fsml.pyfunc import FsmlPyfunc

mlflow.models.set_model(FsmlPyfunc())
