"""Model panel: choose a model (zoo, local folder, HF cache), device and dtype; the card.

The device list (torch, CUDA) and the Hugging Face cache scan run on the worker, as quiet
requests: the panel starts with the CPU and "scanning…" and fills in when they answer.
"""
from __future__ import annotations

import os
from html import escape
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from lab.core import models
from lab.core.units import format_bytes, format_count
from lab.ui import settings as lab_settings
from lab.ui import theme as lab_theme
from lab.ui.panels.base import Panel


class ModelPanel(Panel):
    panel_id = "model"
    title = "Model"
    area = "left"
    order = 10

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model", "Size"])
        self.tree.setRootIsDecorated(True)
        # long names are cut short with "…" (the tooltip has them whole), never scrolled sideways
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeToContents)
        self.tree.itemDoubleClicked.connect(lambda *_: self.load_selected())
        self.open_button = QPushButton("Open folder…")
        self.open_button.clicked.connect(self.choose_folder)
        self.load_button = QPushButton("Load")
        self.load_button.setDefault(True)
        self.load_button.clicked.connect(self.load_selected)
        self.device = QComboBox()
        self.devices = ["cpu"]              # until the worker has detected them
        self.device.addItem(models.device_label("cpu"), "cpu")
        self._wanted_device: str | None = None   # asked for before the devices were known
        self._cached: list = []             # models.CachedModel of the last cache scan
        self._trying: str | None = None     # a folder being loaded for the first time
        self.max_memory = QLineEdit()
        self.max_memory.setPlaceholderText("per-device cap, e.g. 0=20GiB,1=20GiB,cpu=64GiB")
        self.max_memory.setToolTip("Only for 'split across GPUs': the most each device may hold.")
        self.dtype = QComboBox()
        self.dtype.addItems(list(models.DTYPES))
        self.device.currentIndexChanged.connect(self._update_note)
        self.dtype.currentIndexChanged.connect(self._update_note)
        self.note = QLabel()
        self.note.setWordWrap(True)
        lab_theme.tint(self.note, "warn")
        self.error = QLabel()
        self.error.setWordWrap(True)
        lab_theme.tint(self.error, "error")
        self.error.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error.hide()
        self.card_view = QTextBrowser()
        self.card_view.setOpenExternalLinks(False)

        form = QFormLayout()
        form.addRow("Device", self.device)
        form.addRow("Dtype", self.dtype)
        self.max_memory_label = QLabel("Max memory")
        form.addRow(self.max_memory_label, self.max_memory)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        buttons.addWidget(self.load_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tree, 2)
        lay.addLayout(buttons)
        lay.addLayout(form)
        lay.addWidget(self.note)
        lay.addWidget(self.error)
        lay.addWidget(self.card_view, 3)
        self.refresh_sources()
        self._update_note()
        session.error.connect(self._show_error)
        session.model_loading.connect(self._loading)
        session.request("model.devices", _detect_devices, self._got_devices, lambda _message: None,
                        label="detecting devices", needs_model=False, quiet=True)

    def _got_devices(self, found: list[tuple[str, str]]) -> None:
        current = self._wanted_device or self.current_device()
        self.devices = [dev for dev, _ in found]
        self.device.blockSignals(True)
        self.device.clear()
        for dev, label in found:
            self.device.addItem(label, dev)
        if any(d.startswith("cuda") for d in self.devices):
            self.device.addItem("split across GPUs (accelerate)", models.SPLIT)
        self.device.setCurrentIndex(max(0, self.device.findData(current)))
        self.device.blockSignals(False)
        self._wanted_device = None
        self._update_note()

    # --- sources -----------------------------------------------------------------------
    def refresh_sources(self) -> None:
        self.tree.clear()
        zoo = QTreeWidgetItem(["Bundled zoo", ""])
        for name, path in models.zoo_models().items():
            size = sum(f.stat().st_size for f in path.glob("*") if f.is_file())
            item = QTreeWidgetItem([f"zoo:{name}", format_bytes(size)])
            item.setData(0, Qt.UserRole, f"zoo:{name}")
            item.setToolTip(0, str(path))
            zoo.addChild(item)
        self.cache = QTreeWidgetItem(["Hugging Face cache", ""])
        self._fill_cache(None)
        self.folders = QTreeWidgetItem(["Folders", ""])
        for path in lab_settings.model_folders():       # remembered across launches
            if os.path.isdir(path):
                self.add_folder(path)
        for it in (zoo, self.cache, self.folders):
            self.tree.addTopLevelItem(it)
            it.setExpanded(True)
        self.tree.resizeColumnToContents(0)
        self.session.request("model.cache", lambda _lm, _job: models.cached_models(), self._fill_cache,
                             lambda _message: self._fill_cache([]), label="scanning the model cache",
                             needs_model=False, quiet=True)

    def _fill_cache(self, cached) -> None:
        """Show the cache scan's models (None: the scan is still running)."""
        self._cached = list(cached or [])
        self.cache.takeChildren()
        for c in self._cached:
            item = QTreeWidgetItem([c.repo_id, format_bytes(c.size_bytes)])
            item.setData(0, Qt.UserRole, c.repo_id)
            item.setToolTip(0, str(c.path))
            self.cache.addChild(item)
        if not self._cached:
            empty = QTreeWidgetItem(["(scanning the local cache…)" if cached is None
                                     else "(no models in the local cache)", ""])
            empty.setDisabled(True)
            self.cache.addChild(empty)
        self.tree.resizeColumnToContents(0)

    def add_folder(self, path: str) -> QTreeWidgetItem:
        for i in range(self.folders.childCount()):
            if self.folders.child(i).data(0, Qt.UserRole) == path:
                return self.folders.child(i)
        item = QTreeWidgetItem([path, ""])
        item.setData(0, Qt.UserRole, path)
        item.setToolTip(0, path)
        self.folders.addChild(item)
        self.folders.setExpanded(True)
        self._name_folders()
        return item

    def _name_folders(self) -> None:
        """Each folder by its last path parts, as many as it takes to tell them apart."""
        items = [self.folders.child(i) for i in range(self.folders.childCount())]
        parts = [Path(it.data(0, Qt.UserRole)).parts for it in items]
        depth = [1] * len(items)
        while True:
            names = [os.path.join(*p[-d:]) if p else "" for p, d in zip(parts, depth)]
            clash = [i for i, n in enumerate(names) if names.count(n) > 1 and depth[i] < len(parts[i])]
            if not clash:
                break
            for i in clash:
                depth[i] += 1
        for it, name in zip(items, names):
            it.setText(0, name)

    def _drop_folder(self, path: str) -> None:
        lab_settings.forget_model_folder(path)
        for i in range(self.folders.childCount()):
            if self.folders.child(i).data(0, Qt.UserRole) == path:
                self.folders.takeChild(i)
                break
        self._name_folders()

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a model folder (with config.json)",
                                                lab_settings.last_folder())
        if path:
            self.load_ref(path)

    def selected_ref(self) -> str:
        item = self.tree.currentItem()
        return item.data(0, Qt.UserRole) if item is not None else ""

    def load_selected(self) -> None:
        ref = self.selected_ref()
        if ref:
            self.load_ref(ref)

    def load_ref(self, ref: str, device: str | None = None, dtype: str | None = None) -> None:
        if not ref.startswith("zoo:") and "/" in ref and not any(c.repo_id == ref for c in self._cached):
            self.tree.setCurrentItem(self.add_folder(ref))
            self._trying = ref                # dropped from the list if it fails to load
        if device:
            i = self.device.findData(device)
            if i >= 0:
                self.device.setCurrentIndex(i)
            elif self.devices == ["cpu"] and device != "cpu":
                # The worker has not listed the devices yet: it loads the model after
                # answering, so pass the device on; the combo shows it once listed.
                self._wanted_device = device
                self.session.load_model(ref, device, self.dtype.currentText())
                return
        if dtype and dtype in models.DTYPES:
            self.dtype.setCurrentText(dtype)
        max_memory = None
        if self.current_device() == models.SPLIT and self.max_memory.text().strip():
            try:
                max_memory = models.parse_max_memory(self.max_memory.text())
            except Exception as err:
                self._show_error(str(err))
                return
        self.session.load_model(ref, self.current_device(), self.dtype.currentText(), max_memory)

    def current_device(self) -> str:
        return self.device.currentData() or "cpu"

    def _update_note(self) -> None:
        split = self.current_device() == models.SPLIT
        self.max_memory.setVisible(split)
        self.max_memory_label.setVisible(split)
        try:
            _, notes = models.choose_device(self.current_device(), self.dtype.currentText(), self.devices)
        except Exception as err:
            notes = [str(err)]
        self.note.setText(" ".join(notes))
        self.note.setVisible(bool(notes))

    # --- state ---------------------------------------------------------------------------
    def _loading(self, ref: str) -> None:
        self.error.hide()
        self.load_button.setEnabled(False)
        self.card_view.setHtml(f"<p>Loading <b>{escape(ref)}</b>…</p>")

    def _show_error(self, message: str) -> None:
        self.load_button.setEnabled(True)
        if self._trying is not None:          # a new folder that did not load leaves the list
            self._drop_folder(self._trying)
            self._trying = None
        self.error.setText(message)
        self.error.show()
        if self.session.card is None:
            self.card_view.setHtml("<p>No model loaded.</p>")

    def on_model_changed(self, card) -> None:
        self.load_button.setEnabled(True)
        if card is None:
            self.card_view.setHtml("<p>No model loaded.</p>")
            return
        self.card_view.setHtml(card_html(card))
        if card.source != "zoo" and os.path.isdir(card.ref):
            lab_settings.remember_model_folder(card.ref)
            self.add_folder(card.ref)
        if self._trying == card.ref:
            self._trying = None
        self._select_current(card.ref)

    def _select_current(self, ref: str) -> None:
        """The list's selection follows the loaded model."""
        for top in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(top)
            for i in range(group.childCount()):
                if group.child(i).data(0, Qt.UserRole) == ref:
                    self.tree.setCurrentItem(group.child(i))
                    return
        self.tree.clearSelection()
        self.tree.setCurrentItem(None)

    def selftest_ready(self) -> bool:
        return self.session.card is not None


def _detect_devices(_lm, _job) -> list[tuple[str, str]]:
    """On the worker: [(device, label)] of every device torch can use here."""
    return [(dev, models.device_label(dev)) for dev in models.available_devices()]


def card_html(card) -> str:
    layers = str(card.layers)
    if card.kind == "encoder-decoder":
        layers = f"{card.layers} encoder + {card.decoder_layers} decoder"
    heads = str(card.heads)
    if card.kv_heads and card.kv_heads != card.heads:
        heads += f" (key/value heads: {card.kv_heads}, grouped-query)"
    rows = [
        ("Architecture", f"{card.kind} — {card.architecture} ({card.model_type})"),
        ("Layers", layers), ("Heads", heads), ("Hidden size", str(card.hidden)),
        ("Vocabulary", f"{card.vocab:,}"),
        ("Context window", f"{card.context:,} tokens" if card.context else "no fixed limit (relative positions)"),
        ("Parameters", f"{card.params:,} ({format_count(card.params)})"),
        ("Weights in memory", f"{format_bytes(card.param_bytes)} at {card.dtype}"),
        ("Device", card.device), ("Attention", card.attn_implementation + " (eager for captures)"),
        ("Source", f"{card.source}: {card.path}"),
    ]
    for dev, modules in models.device_map_summary(card.device_map).items():
        shown = ", ".join(modules[:4]) + (f" … (+{len(modules) - 4})" if len(modules) > 4 else "")
        rows.append((f"On {dev}", f"{len(modules)} modules: {shown}"))
    body = "".join(f"<tr><td><b>{escape(k)}</b></td><td>{escape(v)}</td></tr>" for k, v in rows)
    notes = "".join(f"<p style='color:{lab_theme.tone('warn')}'>{escape(n)}</p>" for n in card.notes)
    return f"<h3>{escape(card.name)}</h3><table cellspacing=4>{body}</table>{notes}"
