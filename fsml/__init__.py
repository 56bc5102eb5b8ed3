"""fsml: a feature-store-centric ML platform (Feast, LightGBM, MLflow, FastAPI).

Importing the package does one thing: it turns off typeguard's run-time instrumentation before
Feast is imported (see ``fsml._typeguard``). Everything else happens when a command runs.
"""

from fsml._typeguard import disable_typeguard_instrumentation

disable_typeguard_instrumentation()
