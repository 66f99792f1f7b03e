"""The sampling controls of the decoding panel: strategy, temperature, top-k/p, min-p,
repetition penalty, length, seed, and the model's generation defaults."""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from lab.core.sampling import GREEDY, SAMPLE, SOURCE, SamplingSettings
from lab.ui import theme as lab_theme


class SamplingControls(QWidget):
    """Controls that refuse invalid values; ``changed`` once per change by the user (or per
    ``set_settings``). ``use_defaults`` is the Model defaults button, for the owner to wire."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.strategy = QComboBox()
        self.strategy.addItem("greedy (argmax)", GREEDY)
        self.strategy.addItem("sampling (multinomial)", SAMPLE)
        self.temperature = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=5.0, singleStep=0.1, value=1.0)
        self.temperature.setToolTip("Divides the logits before softmax. 0 means greedy: always the most likely token.")
        self.temp_note = QLabel("0 = greedy")
        self.top_k = QSpinBox(minimum=0, maximum=1_000_000, value=50)
        self.top_k.setSpecialValueText("0 (off)")
        self.top_k.setToolTip("Keep the k most likely tokens (ties at the edge survive). 0 turns top-k off.")
        self.top_p = QDoubleSpinBox(decimals=3, minimum=0.001, maximum=1.0, singleStep=0.05, value=1.0)
        self.top_p.setToolTip("Keep the smallest set of tokens whose mass reaches p (the token that crosses p "
                              "stays). 1.0 turns top-p off; 0 is not allowed.")
        self.min_p = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1.0, singleStep=0.01, value=0.0)
        self.min_p.setToolTip("Remove tokens below min-p x the top token's probability. 0 turns it off.")
        self.rep = QDoubleSpinBox(decimals=2, minimum=0.05, maximum=10.0, singleStep=0.1, value=1.0)
        self.rep.setToolTip("Repetition penalty (CTRL): divides positive logits of tokens already in the text. "
                            "1.0 turns it off.")
        self.max_new = QSpinBox(minimum=1, maximum=100_000, value=20)
        self.max_new.setToolTip("Stop after this many new tokens (an end-of-sequence token counts). "
                                "Clamped to the model's context window.")
        self.stop_eos = QCheckBox("stop at EOS")
        self.stop_eos.setChecked(True)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed.setToolTip("Seed of the torch.Generator: the same seed and settings give the same tokens.")
        self.fill_order = QComboBox()
        self.fill_order.addItem("left to right", "left-to-right")
        self.fill_order.addItem("most confident first", "most-confident")
        self.defaults_label = QLabel()
        self.defaults_label.setWordWrap(True)
        lab_theme.tint(self.defaults_label, "muted")
        self.defaults_label.setToolTip(SOURCE)
        self.use_defaults = QPushButton("Model defaults")
        self.use_defaults.setToolTip("Put back the model's own generation settings")

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(2)
        grid.addWidget(QLabel("Strategy"), 0, 0)
        grid.addWidget(self.strategy, 0, 1)
        grid.addWidget(QLabel("Temperature"), 0, 2)
        tl = QHBoxLayout()
        tl.addWidget(self.temperature)
        tl.addWidget(self.temp_note)
        grid.addLayout(tl, 0, 3)
        grid.addWidget(QLabel("Top-k"), 0, 4)
        grid.addWidget(self.top_k, 0, 5)
        grid.addWidget(QLabel("Top-p"), 0, 6)
        grid.addWidget(self.top_p, 0, 7)
        grid.addWidget(QLabel("Max new tokens"), 1, 0)
        grid.addWidget(self.max_new, 1, 1)
        grid.addWidget(QLabel("Seed"), 1, 2)
        grid.addWidget(self.seed, 1, 3)
        grid.addWidget(self.stop_eos, 1, 4, 1, 2)
        grid.addWidget(self.use_defaults, 1, 6, 1, 2)
        self.advanced = QGroupBox("Advanced")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        adv = QHBoxLayout(self.advanced)
        adv.setContentsMargins(6, 2, 6, 2)
        self._adv_widgets = [QLabel("Min-p"), self.min_p, QLabel("Repetition penalty"), self.rep,
                             QLabel("Fill order (masked LM)"), self.fill_order]
        for w in self._adv_widgets:
            adv.addWidget(w)
        adv.addStretch(1)
        self.advanced.toggled.connect(self._show_advanced)
        for w in self._adv_widgets:
            w.setVisible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        lay.addLayout(grid)
        lay.addWidget(self.advanced)
        lay.addWidget(self.defaults_label)
        for w in self._widgets():
            (w.currentIndexChanged if isinstance(w, QComboBox) else
             w.toggled if isinstance(w, QCheckBox) else w.valueChanged).connect(self._changed)

    def _widgets(self) -> tuple:
        return (self.strategy, self.temperature, self.top_k, self.top_p, self.min_p, self.rep, self.max_new,
                self.seed, self.stop_eos, self.fill_order)

    def _show_advanced(self, on: bool) -> None:
        for w in self._adv_widgets:
            w.setVisible(on)

    def settings(self) -> SamplingSettings:
        return SamplingSettings(strategy=self.strategy.currentData(), temperature=round(self.temperature.value(), 4),
                                top_k=int(self.top_k.value()), top_p=round(self.top_p.value(), 6),
                                min_p=round(self.min_p.value(), 6), repetition_penalty=round(self.rep.value(), 4),
                                max_new_tokens=int(self.max_new.value()), stop_at_eos=self.stop_eos.isChecked(),
                                seed=int(self.seed.value())).validated()

    def order(self) -> str:
        """The fill order of a masked LM."""
        return self.fill_order.currentData()

    def set_settings(self, s: SamplingSettings) -> None:
        """Put ``s`` in the controls: one ``changed``, not one per control."""
        blockers = [QSignalBlocker(w) for w in self._widgets()]
        self.strategy.setCurrentIndex(max(0, self.strategy.findData(s.strategy)))
        self.temperature.setValue(s.temperature)
        self.top_k.setValue(s.top_k)
        self.top_p.setValue(s.top_p)
        self.min_p.setValue(s.min_p)
        self.rep.setValue(s.repetition_penalty)
        self.max_new.setValue(s.max_new_tokens)
        self.stop_eos.setChecked(s.stop_at_eos)
        self.seed.setValue(s.seed)
        del blockers
        self._changed()

    def show_defaults(self, d) -> None:
        """The model's generation defaults (lab.core.sampling.ModelDefaults): in the controls,
        and where each came from."""
        self.set_settings(d.settings)
        s = d.settings
        model_set = [k for k, v in d.sources.items() if v == "model"]
        self.defaults_label.setText(
            f"Model defaults: {s.describe()}, max new tokens {s.max_new_tokens} — "
            + (f"from the model's generation config ({', '.join(model_set)}), the rest transformers' defaults"
               if model_set else "transformers' defaults (the model's generation config sets none)")
            + ("" if not d.notes else " · " + " ".join(d.notes)))
        self.fill_order.setVisible(self.advanced.isChecked())

    def set_generates(self, generates: bool) -> None:
        """A masked LM fills the masks it is given: no end-of-sequence, no length to cap."""
        for w in (self.stop_eos, self.max_new):
            w.setEnabled(generates)
            w.setToolTip("" if generates else "Does not apply to a masked LM: it fills the [MASK] tokens in the prompt.")

    def _changed(self, *_) -> None:
        s = self.settings()
        sampling_on = s.strategy == SAMPLE
        for w in (self.top_k, self.top_p, self.min_p):
            w.setEnabled(sampling_on)
        self.temp_note.setText("0 = greedy" + (" → greedy now" if sampling_on and s.temperature == 0 else ""))
        lab_theme.tint(self.temp_note, "warn" if sampling_on and s.temperature == 0 else "muted")
        self.changed.emit()
