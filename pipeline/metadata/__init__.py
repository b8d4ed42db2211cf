"""The only code that opens ML Metadata or parses artifact files: the store, what a run did, what it recorded."""
