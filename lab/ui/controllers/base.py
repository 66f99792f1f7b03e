"""The controller base class (see the package docstring)."""
from __future__ import annotations


class Controller:
    """State owned by a worker thread, addressed by ``name``.

    Subclasses define operations as methods ``op(self, lm, job, **args) -> snapshot``; ``lm``
    is the current LoadedModel (None on the compute lane), ``job`` the task's progress and
    cancel handle. Operations run one at a time on the controller's lane, in the order the
    panel sent them.
    """

    name: str = ""
    #: "model": the worker that owns the loaded model; "compute": a second worker for jobs
    #: that need no model (fits), so they never hold up model work.
    lane: str = "model"

    def model_replaced(self) -> None:
        """Another model became current: drop everything bound to the previous one."""
