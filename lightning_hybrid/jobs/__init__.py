"""The Hydra jobs, the only place the package imports hydra and omegaconf:

  train           python -m lightning_hybrid.train           the main job (conf/train.yaml)
  bench           python -m lightning_hybrid.bench           the benchmark harness (conf/bench.yaml)
  distill_minilm  python -m lightning_hybrid.distill_minilm  all-MiniLM-L6-v2 into its ternary copy

and their glue: configs.py (where conf/ is, the callbacks a config names), summary.py (the end-of-run
summary every job prints and writes), runs.py (finished runs as teachers and starting points).
"""
