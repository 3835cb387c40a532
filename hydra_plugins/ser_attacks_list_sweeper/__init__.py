"""A Hydra sweeper that runs a LIST of override sets as one sweep (``hydra/sweeper=list``)."""
