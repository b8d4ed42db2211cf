"""Imported by each of Beam's local worker processes as it starts (`--beam_plugins`, which the
multi_processing profile passes): the worker's warnings and the errors Python ignores go, as log records,
to the run's process and through its handlers (pipeline/logs.py), instead of straight onto the console the
worker shares with the run."""

from pipeline import logs

logs.configure_beam_worker()
