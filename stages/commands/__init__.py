"""Commands users run outside `dvc repro`: predict, compare, plots_offline."""
