"""Background jobs: what a module declares (``spec``), the one loop that runs them (``runner``), the leases that
make a job run on one instance of the cluster (``leases``), the run log (``runlog``) and its admin routes
(``admin``). Nothing is imported here: a module's descriptor imports ``spec`` alone, which stays light."""
