"""The package version, in a module of its own so that any part (a backend tagging its runs, the
run's ``run_start`` line) can read it without importing the package's front door."""

__version__ = "0.1.0"
