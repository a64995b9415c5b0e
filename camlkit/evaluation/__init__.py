"""Scoring networks: sliding-window inference (inference), the paper's metrics (metrics),
``camlkit evaluate`` (evaluate) and a run's own end-of-run evaluation (final_eval), Table 1/2
reports (report, with the sentences of camlkit.diagnostics.sentences) and published results
(results). What a network's CMA and OCC hold: camlkit.diagnostics. Import each module by name.
"""
