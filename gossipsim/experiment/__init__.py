"""Experiment tooling: configuration, running one config, sweeps, result directories, budgets."""
