"""The notebook-facing room, beside the command line: training as a background process (launch,
its child process, watch) and the runs a notebook finds or trains (runs). Import each module by
name.
"""
