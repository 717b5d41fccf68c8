"""Training, baselines, calibration, evaluation, SHAP, the MLflow registry and the scoring model."""
