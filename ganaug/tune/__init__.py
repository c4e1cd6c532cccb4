"""Learning across runs: the GAN run history, tuning judged by downstream utility, warm start.

Import the submodules (`ganaug.tune.history`, `ganaug.tune.study`, ...) directly: the GAN stage
imports `history`, so this package must not import the GAN stage back.
"""
