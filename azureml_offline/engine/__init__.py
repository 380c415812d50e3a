"""The engine: the processes that run the offline workspace's work (runs, sweeps, MPI jobs, web services)."""
