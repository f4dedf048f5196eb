"""Reports: plots and tables of runs."""
