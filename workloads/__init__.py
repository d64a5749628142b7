"""Data the tests, the benchmarks and the device scripts share: models, op cases, hand-written
kernels. Imported as `workloads.*` with the repository root on sys.path (pytest's `pythonpath`)."""
