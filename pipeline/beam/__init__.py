"""How the components' Beam work runs: the Beam args of each profile, the in-process overheads cut, and
tf.Example files read a batch at a time."""
