"""How the components' Beam work runs: the Beam args of each profile, and the in-process overheads cut."""
