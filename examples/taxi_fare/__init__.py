"""The taxi fare task: a trip's fare in dollars (a regression) from its distance, duration and start hour."""
