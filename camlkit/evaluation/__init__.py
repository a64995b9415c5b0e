"""Scoring and reading networks: sliding-window inference (inference), the paper's metrics
(metrics), ``camlkit evaluate`` (evaluate) and a run's own end-of-run evaluation (final_eval),
Table 1/2 reports (report, with the sentences they print in sentences), published results
(results), and what a network's CMA and OCC hold (structure, measured by measure; occ_lock for
the l_o lock read from logs). Import each module by name.
"""
