"""The benchmark harness's parts, behind `python -m lightning_hybrid.bench` (lightning_hybrid/jobs/bench.py):
the grid of runs (grid.py), the per-run recorder callback (recorder.py), the markdown report (report.py)
and the plots (plots.py, matplotlib)."""
