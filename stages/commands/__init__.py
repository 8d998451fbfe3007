"""Commands users run outside `dvc repro`: predict, compare, plots_offline, serve, sweep."""

import signal


def interrupt_on_ctrl_c():
    """Ctrl-C raises KeyboardInterrupt whatever the parent left: a process started in the
    background by a non-interactive shell inherits SIGINT ignored, and Python then raises none."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
