"""Canonical labs → landmark feature matrix (baseline-relative kinetics)."""
