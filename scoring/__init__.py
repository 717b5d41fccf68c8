"""Batch serving: stream a cohort through a registered model and write the scores (I/O lives here,
model code in :mod:`models`)."""
