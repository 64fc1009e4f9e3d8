"""Experiment tracking and the model registry, on MLflow: a local SQLite store by default, a team's
MLflow server when `track.uri` or STRATA_TRACKING_URI names one. MLflow is imported only here."""
