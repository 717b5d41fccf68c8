"""Thin entry points: DVC stages and the `crs` command line. No science here."""
