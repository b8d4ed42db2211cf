"""One file per orchestrator (run it, or hand it to the orchestrator), and the glue they share; nothing here knows the pipeline's shape."""
