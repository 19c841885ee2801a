"""Benchmarks: every figure is a ratio against a reference measured in the same run.

    python -m bench                      # everything (about 20 minutes on 2 cores)
    python -m bench --quick              # the same parts, shortened (a few minutes)
    python -m bench --only predict,dashboard

See bench/results.md for the latest run and what each row means.
"""
