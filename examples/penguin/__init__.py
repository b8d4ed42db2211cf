"""The Palmer penguins task: the species (three classes) from four body measurements."""
