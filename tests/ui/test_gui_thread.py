"""No torch on the GUI thread: while the window is driven (model loaded, prompts typed,
selections changed, every panel and tab shown, the GPU poll fired), every torch or CUDA
call runs on the worker. A profiler on the GUI thread records any call into torch."""
import os
import sys

from PySide6.QtWidgets import QTabWidget

# torch replaces the standard library's inspect.getfile when it is imported
# (torch/package/package_importer.py), and shiboken's import hook calls inspect.getsource
# on every ``from x import y``: that is not torch work.
ALLOWED = ("_patched_getfile",)


class TorchCalls:
    """A sys.setprofile hook for this thread: torch Python code and torch C functions."""

    def __init__(self):
        import torch

        self.torch_dir = os.path.dirname(torch.__file__) + os.sep
        self.calls: list[str] = []

    def __call__(self, frame, event, arg):
        if event == "call":
            if frame.f_code.co_filename.startswith(self.torch_dir) and frame.f_code.co_name not in ALLOWED:
                self.calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}{self._caller(frame)}")
        elif event == "c_call":
            module = getattr(arg, "__module__", None) or ""
            owner = type(getattr(arg, "__self__", None)).__module__ or ""
            if module.startswith("torch") or owner.startswith("torch"):
                self.calls.append(f"{module or owner}.{getattr(arg, '__name__', arg)}{self._caller(frame)}")

    @staticmethod
    def _caller(frame) -> str:
        """The lab's frames that led to the call (to say where to look)."""
        lab = []
        while frame is not None and len(lab) < 4:
            if f"{os.sep}lab{os.sep}" in frame.f_code.co_filename:
                lab.append(f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} {frame.f_code.co_name}")
            frame = frame.f_back
        return " <- " + " <- ".join(lab) if lab else ""

    def where(self) -> str:
        return "\n".join(dict.fromkeys(self.calls))


def test_no_torch_call_on_the_gui_thread_while_panels_are_driven(qtbot, tiny_gpt2):
    # Imports are start-up, not panel work: done before the profiler is on.
    import transformers  # noqa: F401

    from lab.core import decoding, embeddings, models, tokens, trace  # noqa: F401
    from lab.ui.main_window import MainWindow
    from lab.ui.panels.base import panel_classes

    panel_classes()
    probe = TorchCalls()
    sys.setprofile(probe)
    try:
        win = MainWindow(restore=False)
        qtbot.addWidget(win)
        win.resize(1400, 900)
        win.show()
        session = win.session
        win.load_model(str(tiny_gpt2))
        qtbot.waitUntil(lambda: session.card is not None, timeout=60000)
        win.gpu_timer.timeout.emit()            # what the 2 s poll does on a CUDA machine
        for text in ("The teacher taught the students with the book.", "Dog bites man."):
            session.set_prompt(text, immediate=True)
            qtbot.waitUntil(lambda: session.trace is not None and session.prompt == text, timeout=60000)
            for token in range(3):
                session.select(token=token, layer=1, head=token)
                qtbot.wait(20)
        for pid in win.panels:
            win.show_panel(pid)
            qtbot.wait(30)
        for tabs in win.findChildren(QTabWidget):
            for i in range(tabs.count()):
                tabs.setCurrentIndex(i)
                qtbot.wait(30)
        qtbot.waitUntil(lambda: not session.busy, timeout=60000)
        qtbot.wait(200)
    finally:
        sys.setprofile(None)
    win.close()
    assert not probe.calls, "torch ran on the GUI thread:\n" + probe.where()
