"""The zero/one/few-shot prompt helper: template fields and how much of the window they take."""
from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QWidget

from lab.core.prompt_templates import MODES, build_prompt, parse_examples
from lab.ui.widgets.context_bar import ContextBar
from lab.ui.widgets.control_names import name_buttons


class PromptHelper(QWidget):
    """Builds a prompt from a template. ``use_requested(prompt)`` when the user asks for it;
    ``parts_changed(parts)`` after a typing pause, for the owner to count their tokens."""

    use_requested = Signal(str)
    parts_changed = Signal(dict)

    def __init__(self, parent=None):
        super().__init__(parent)
        form = QFormLayout(self)
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.mode.setCurrentText("few-shot")
        self.instruction = QLineEdit("Translate English to French.")
        self.examples = QPlainTextEdit("sea otter => loutre de mer\ncheese => fromage\nbread => pain")
        self.examples.setToolTip("One example a line: input => output")
        self.examples.setMaximumHeight(90)
        self.query = QLineEdit("apple")
        self.use_prompt = QPushButton("Use as prompt")
        self.use_prompt.clicked.connect(self._use)
        name_buttons(self.use_prompt)
        self.context_bar = ContextBar()
        self.context_label = QLabel()
        self.context_label.setWordWrap(True)
        form.addRow("Template", self.mode)
        form.addRow("Instruction", self.instruction)
        form.addRow("Examples", self.examples)
        form.addRow("Query", self.query)
        form.addRow("", self.use_prompt)
        form.addRow("Context window", self.context_bar)
        form.addRow("", self.context_label)
        self._timer = QTimer(self, singleShot=True, interval=250)
        self._timer.timeout.connect(self.count)
        self.instruction.textChanged.connect(self._timer.start)
        self.query.textChanged.connect(self._timer.start)
        self.examples.textChanged.connect(self._timer.start)
        self.mode.currentIndexChanged.connect(self._timer.start)

    def template(self) -> tuple[str, dict]:
        return build_prompt(self.mode.currentText(), self.instruction.text(),
                            parse_examples(self.examples.toPlainText()), self.query.text())

    def count(self) -> None:
        """Ask the owner to count the parts' tokens now."""
        self.parts_changed.emit(self.template()[1])

    def _use(self) -> None:
        self.use_requested.emit(self.template()[0])

    def show_counts(self, counts: dict[str, int], context: int, want: int) -> None:
        """The parts' token counts, with the model's window and the new tokens wanted."""
        counts = dict(counts)
        used = sum(counts.values())
        counts["new tokens"] = want
        self.context_bar.set_counts(counts, context or used + want)
        ex = counts.get("examples", 0)
        if context:
            self.context_label.setText(
                f"instruction {counts['instruction']} + examples {ex} + query {counts['query']} = {used} of "
                f"{context} tokens; the examples take {100 * ex / context:.1f}% of the window; "
                f"{max(0, context - used)} left for new tokens" + (" — not enough for max new tokens!"
                                                                  if context - used < want else ""))
        else:
            self.context_label.setText(f"{used} tokens (examples {ex}); this model states no context window")
