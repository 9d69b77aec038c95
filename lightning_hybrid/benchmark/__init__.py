"""The benchmark harness behind `python -m lightning_hybrid.bench`: grid, recorder, report, plots."""
