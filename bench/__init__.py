"""The benchmarks: each prints its figures beside the reference it names (`python -m bench.<name>`)."""
