"""What stops a run from doing harm: the input checks and drift tests, one run per store, clean-up after a crash, atomic serving versions."""
