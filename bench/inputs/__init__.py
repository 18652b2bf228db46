"""A run's inputs: suites and suite files, data sources, black boxes and the FID feature network."""
