"""Studies on Ray Tune: search spaces, the trainable, the MLflow callback and the runner.

The only code that calls Ray. Import the submodules directly (`nsr_tune.study.runner`, ...):
importing this package loads neither Ray nor Optuna.
"""
