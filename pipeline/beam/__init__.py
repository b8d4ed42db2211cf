"""How the components' Beam work runs: the Beam args of each profile, the in-process overheads cut,
tf.Example files read a batch at a time, and TFMA's metric inputs without its general path."""
