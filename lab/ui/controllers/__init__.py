"""Model-bound state that lives beside the worker, not on widgets.

A controller is a plain Python object (no Qt) that a panel registers with the session at
construction: ``session.register(DecodeController())``. From then on it is touched only
on its worker's thread. The panel addresses it by name with
``session.send(name, op, args, on_done, on_error)``: the worker calls
``controller.<op>(lm, job, **args)`` and hands the return value (an immutable snapshot, a
frozen dataclass) back to ``on_done`` on the GUI thread. When another model becomes
current the worker calls ``model_replaced()`` on every controller of the model lane
before any later request reaches it, so nothing of the old model survives a switch.

Because the panel sends an operation name and plain values, no code that runs on the
worker can capture a widget.
"""
from lab.ui.controllers.base import Controller

__all__ = ["Controller"]
