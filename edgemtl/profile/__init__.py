"""Measuring models: parameter/MAC accounting (counts) and runtime latency."""
