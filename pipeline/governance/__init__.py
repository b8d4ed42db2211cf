"""What people ask of past runs: the `pipeline` command, runs, lineage, rollback, the report; it reads the store and never runs the pipeline."""
