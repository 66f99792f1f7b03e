"""The prompt box shared by every panel (and the target text of encoder-decoder models)."""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
)

from lab.ui import settings as lab_settings
from lab.ui import theme as lab_theme
from lab.ui.panels.base import Panel


class PromptEdit(QPlainTextEdit):
    submitted = Signal()

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and event.modifiers() & Qt.ControlModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class PromptPanel(Panel):
    panel_id = "prompt"
    title = "Prompt"
    area = "top"
    order = 0
    docked = False           # a strip above the docks: it must never take their space

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.edit = PromptEdit()
        self.edit.setPlaceholderText("Type a prompt: every panel follows it. Ctrl+Enter analyses now.")
        self.edit.setFixedHeight(64)
        self.edit.setTabChangesFocus(True)
        self.target = QLineEdit()
        self.target.setObjectName("target")      # the one Target control of the lab
        self.target.setPlaceholderText("Target text for encoder-decoder models (empty: the model's own output; "
                                       "editing the input clears it)")
        self.recent = QComboBox()
        self.recent.setToolTip("Recent prompts")
        self.recent.setMinimumContentsLength(18)
        self.recent.activated.connect(self._use_recent)
        self.run_button = QPushButton("Analyse")
        self.run_button.setToolTip("Capture a trace of this prompt (Ctrl+Enter)")
        self.run_button.clicked.connect(self.submit)
        # The hint line keeps its one line of space whether it shows a hint or not, so the
        # views below never jump when one appears; a long hint is cut, whole in the tooltip.
        self.note = QLabel()
        lab_theme.tint(self.note, "warn")
        self.note.setFixedHeight(self.note.fontMetrics().lineSpacing() + 4)
        self.note.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.edit.submitted.connect(self.submit)
        self.edit.textChanged.connect(self._typed)
        self.target.textChanged.connect(session.set_target)
        self.target.textChanged.connect(self._target_typed)
        self._target_note = False

        side = QVBoxLayout()
        side.addWidget(self.run_button)
        side.addWidget(self.recent)
        side.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.edit, 1)
        row.addLayout(side)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row)
        self.target_row = QHBoxLayout()
        self.target_label = QLabel("Target:")
        self.target_row.addWidget(self.target_label)
        self.target_row.addWidget(self.target, 1)
        lay.addLayout(self.target_row)
        lay.addWidget(self.note)
        self._set_target_visible(False)
        self._fill_recent()
        session.prompt_changed.connect(self._prompt_from_session)
        session.target_changed.connect(self._target_from_session)
        session.notice.connect(self.show_note)

    def _set_target_visible(self, on: bool) -> None:
        self.target.setVisible(on)
        self.target_label.setVisible(on)

    def _fill_recent(self) -> None:
        self.recent.clear()
        self.recent.addItem("Recent…")
        for p in lab_settings.recent_prompts():
            self.recent.addItem(p[:60] + ("…" if len(p) > 60 else ""), p)

    def _use_recent(self, index: int) -> None:
        text = self.recent.itemData(index)
        if text:
            self.edit.setPlainText(text)
            self.submit()
        self.recent.setCurrentIndex(0)

    def _typed(self) -> None:
        if not self._target_note:
            self.show_note("")
        if self.session.target:
            # A forced target belongs to the input it was typed for: a new input gets the
            # model's own output, or a lesson's "1987-03-03" would look right for any input.
            self.target.clear()
            self.show_note("The target was cleared because the input changed: the decoder side now shows "
                           "the model's own output. Type a target again to force one.")
            self._target_note = True      # stays while the user goes on typing the new input
        self.session.set_prompt(self.edit.toPlainText())

    def _prompt_from_session(self, text: str) -> None:
        if text != self.edit.toPlainText():
            self.edit.blockSignals(True)
            self.edit.setPlainText(text)
            self.edit.blockSignals(False)

    def _target_from_session(self, text: str) -> None:
        if text != self.target.text():
            self.target.setText(text)

    def _target_typed(self, text: str) -> None:
        if text and self._target_note:
            self.show_note("")

    def take_focus(self) -> None:
        self.edit.setFocus()

    def restore_defaults(self) -> None:
        """The recent prompts were cleared with the settings: show that."""
        self._fill_recent()

    def submit(self) -> None:
        text = self.edit.toPlainText()
        if not text:
            self.show_note("The prompt is empty: type some text first.")
            return
        lab_settings.remember_prompt(text)
        self._fill_recent()
        self.session.set_prompt(text, immediate=True)
        self.session.capture()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.FontChange:         # presenter fonts: the line grows with them
            self.note.setFixedHeight(self.note.fontMetrics().lineSpacing() + 4)

    def show_note(self, text: str) -> None:
        """A hint under the prompt ("" clears it); the line's height never changes."""
        self._target_note = False
        width = max(self.note.width(), 200)
        self.note.setText(self.note.fontMetrics().elidedText(text, Qt.ElideRight, width))
        self.note.setToolTip(text)

    def on_model_changed(self, card) -> None:
        self._set_target_visible(card is not None and card.kind == "encoder-decoder")
