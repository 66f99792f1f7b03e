"""The scaling fit as a job on the compute lane.

A fit needs no model, so it runs on the compute lane's worker (never holding up model
work) with the same ids, channels, progress, cancel and error handling as every other
job. The panel sends ``fit`` on one channel: a newer fit makes an older one stale, and
Esc (``session.cancel()``) stops it between bootstrap resamples.
"""
from __future__ import annotations

from lab.core import scaling as sc
from lab.ui.controllers.base import Controller


class FitController(Controller):
    name = "scaling.fit"
    lane = "compute"

    def fit(self, lm, job, runs: sc.Runs, bootstrap: int = 200) -> sc.Fit:
        """Fit the five constants of L = E + A/N^alpha + B/D^beta to ``runs``."""
        return sc.fit_runs(runs, bootstrap=bootstrap, job=job)
