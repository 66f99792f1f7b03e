"""The main window: docks built from the panel registry, menus, status bar, layouts.

It owns the workshop (a LessonRunner and the Lessons menu) and wires it to the panels;
it talks to panels through the Panel protocol (lab.ui.panels.base) and, for the two
panels whose jobs are its own menu items (the Model panel's loading, the Lessons panel's
runner), through those classes' public methods.

(Over 500 lines: the docks' default layout, the saved and presenter layouts and the side
docks' widths share one set of dock bookkeeping; menus, keys, panel hosting and the
workshop live in their own modules.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, TypeVar

from PySide6.QtCore import QByteArray, QEvent, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolBar,
    QWidget,
)

from lab.core import models
from lab.core.resources import resource
from lab.core.units import format_bytes, format_count
from lab.ui import settings as lab_settings
from lab.ui import theme as lab_theme
from lab.ui.collector import settle
from lab.ui.help_menu import fill_help_menu
from lab.ui.panel_host import LazyPanels, catch_up
from lab.ui.panels.base import Panel, panel_classes
from lab.ui.panels.lessons import LessonsPanel
from lab.ui.panels.model import ModelPanel
from lab.ui.session import Session
from lab.ui.shortcuts import ViewKeys
from lab.ui.workshop import LessonRunner, LessonsMenu, large_fonts_on, set_large_fonts

AREAS = {"left": Qt.LeftDockWidgetArea, "right": Qt.RightDockWidgetArea,
         "top": Qt.TopDockWidgetArea, "bottom": Qt.BottomDockWidgetArea}
STATE_VERSION = 1
SIDE_FRACTION = 0.28      # the left docks' share of the default window
SIDE_MAX_FRACTION = 0.4   # a small window never gives the side docks more than this
P = TypeVar("P", bound=Panel)


class PanelScroll(QScrollArea):
    """Holds a panel: fills the dock, and scrolls only below the panel's minimum size.

    QScrollArea's own resizing follows height-for-width layouts (any word-wrapped label)
    to their preferred height, which would push a panel's views out of sight; this one
    gives the panel exactly the visible area, or its minimum where that is larger.
    """

    def __init__(self, panel: QWidget):
        super().__init__()
        self.setFrameShape(QFrame.NoFrame)
        self.setWidgetResizable(False)
        self.hold(panel)

    def hold(self, panel: QWidget) -> None:
        """Show ``panel`` (a panel built late replaces the placeholder)."""
        self.setWidget(panel)
        panel.installEventFilter(self)
        self._fit()

    def _fit(self) -> None:
        panel = self.widget()
        if panel is None:
            return
        hint = panel.minimumSizeHint().expandedTo(panel.minimumSize())
        view = self.maximumViewportSize()
        lay = panel.layout()
        if lay is not None and lay.hasHeightForWidth():
            # wrapped labels take more lines when narrow: their height is not in the minimum,
            # and without it the views below would be drawn over
            hint.setHeight(max(hint.height(), lay.minimumHeightForWidth(max(view.width(), hint.width()))))
        need_h = hint.height() > view.height()
        need_v = hint.width() > view.width()
        w = view.width() - (self.verticalScrollBar().sizeHint().width() if need_h else 0)
        w = max(w, hint.width())
        h = view.height() - (self.horizontalScrollBar().sizeHint().height() if need_v else 0)
        panel.resize(w, max(h, hint.height()))

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._fit()

    def eventFilter(self, obj, event):
        if obj is self.widget() and event.type() == QEvent.LayoutRequest:
            QTimer.singleShot(0, self, self._fit)     # dropped if this scroll area is gone
        return False


DEFAULT_SIZE = QSize(1400, 900)
TITLE_BAR = 32       # room left for the window manager's title bar when the screen is small


def default_size() -> QSize:
    """1400 x 900, or the screen's free area where that is smaller (a 1024 x 768 projector):
    the window must not open wider than the screen. The offscreen platform (tests,
    selftest) has no real screen, so its windows keep the size asked for."""
    screen = QGuiApplication.primaryScreen()
    if QGuiApplication.platformName() == "offscreen" or screen is None:
        return QSize(DEFAULT_SIZE)
    free = screen.availableGeometry()
    if free.width() >= DEFAULT_SIZE.width() and free.height() >= DEFAULT_SIZE.height() + TITLE_BAR:
        return QSize(DEFAULT_SIZE)
    return QSize(min(DEFAULT_SIZE.width(), free.width()), min(DEFAULT_SIZE.height(), free.height() - TITLE_BAR))


class MainWindow(QMainWindow):
    def __init__(self, session: Optional[Session] = None, restore: bool = True):
        super().__init__()
        self.setWindowTitle("Transformer Visual Lab")
        self.setObjectName("tvlab-main")
        # The worker (torch, the model) starts after the first paint: see event().
        self.session = session or Session(self, start_workers=False)
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.setDockOptions(QMainWindow.AnimatedDocks | QMainWindow.AllowTabbedDocks | QMainWindow.AllowNestedDocks)
        placeholder = QWidget()
        placeholder.setMaximumSize(0, 0)
        self.setCentralWidget(placeholder)
        self.docks: dict[str, QDockWidget] = {}
        self.panel_classes = panel_classes()
        # Panels tabbed behind another are built on first show (or first lookup).
        self.panels = LazyPanels([c.panel_id for c in self.panel_classes], self._build_panel)
        # the workshop (created in _build_workshop, after the menus)
        self.lesson_runner: LessonRunner
        self.lessons_menu: LessonsMenu
        self.lessons_panel: LessonsPanel
        self.strips: dict[str, QToolBar] = {}
        for cls in self.panel_classes:
            if not cls.docked:
                panel = self.panels[cls.panel_id]
                strip = QToolBar(cls.title, self)
                strip.setObjectName(f"strip-{cls.panel_id}")
                strip.setMovable(False)
                strip.setFloatable(False)
                strip.addWidget(panel)
                self.addToolBar(Qt.TopToolBarArea if cls.area != "bottom" else Qt.BottomToolBarArea, strip)
                self.strips[cls.panel_id] = strip
                continue
            dock = QDockWidget(cls.title.replace("&", "&&"), self)   # "&" is a mnemonic in titles
            dock.setObjectName(f"dock-{cls.panel_id}")
            # A scroll area lets a dock be smaller than its panel's minimum, so the
            # window fits a laptop screen; the panel scrolls instead of forcing the size.
            scroll = PanelScroll(QLabel("Loading…") if cls.tab_with else self.panels[cls.panel_id])
            scroll.setObjectName(f"scroll-{cls.panel_id}")
            dock.setWidget(scroll)
            dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                             | QDockWidget.DockWidgetClosable)
            dock.visibilityChanged.connect(lambda shown, pid=cls.panel_id: shown and self.panels[pid])
            self.docks[cls.panel_id] = dock
        self.model_panel: ModelPanel = self._panel_of(ModelPanel)
        self._default_layout()
        self._default_state = None          # taken at the first show, once sizes are real
        self._restored = False
        # The side docks keep the width the user gave them; extra width goes to the main
        # views. None until the window is first laid out.
        self._side_width: Optional[int] = None
        self._placing = False               # True while the window itself moves the docks
        self._laid_out_size = None
        self._state_before_presenter: Optional[QByteArray] = None
        for dock in self.docks.values():
            dock.installEventFilter(self)
        self.restore_problems: list[str] = []
        self._build_status_bar()
        self._build_menus()
        self.session.model_changed.connect(self._show_model)
        self.session.model_changed.connect(settle)     # libraries + first model: out of gc's walk
        self.session.model_loading.connect(lambda ref: self.model_label.setText(f"Loading {ref}…"))
        self.session.busy_changed.connect(self._busy)
        self.session.progress.connect(self._progress)
        self.session.error.connect(self._error)
        self.resize(default_size())
        self._build_workshop()
        if restore:
            self.restore_settings()
        QTimer.singleShot(500, self.session.start_workers)   # shown or not, jobs run soon

    def event(self, event) -> bool:
        handled = super().event(event)
        if event.type() == QEvent.UpdateRequest:   # painted: now the heavy imports may start
            self.session.start_workers()
        return handled

    def _panel_of(self, cls: type[P]) -> P:
        """The registry's panel of this class (the window's own menus use its public methods)."""
        return self.panels[next(c.panel_id for c in self.panel_classes if issubclass(c, cls))]

    def _build_panel(self, panel_id: str) -> Panel:
        cls = next(c for c in self.panel_classes if c.panel_id == panel_id)
        panel = cls(self.session, self)
        dock = self.docks.get(panel_id)
        if dock is not None:
            dock.widget().hold(panel)
            catch_up(panel, self.session)
        return panel

    # --- workshop: lessons, presenter options, export ------------------------------------
    def _build_workshop(self) -> None:
        icon = resource("icons", "tvlab.png")
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        self.lesson_runner = LessonRunner(self.session, self.panels, show_panel=self.show_panel,
                                          load_model=self.load_model, parent=self)
        self.lessons_panel = self._panel_of(LessonsPanel)
        self.lessons_panel.attach(self.lesson_runner)
        self.lessons_menu = LessonsMenu(self)
        mb = self.menuBar()
        mb.insertMenu(self.help_menu.menuAction(), self.lessons_menu)
        if large_fonts_on():
            set_large_fonts(True)

    # --- layout ------------------------------------------------------------------------
    def _default_layout(self) -> None:
        placed: dict[str, QDockWidget] = {}
        # Heads of tab groups first, so a panel can be tabbed with one that comes later.
        ordered = sorted(self.docked_classes(), key=lambda c: c.tab_with is not None)
        for cls in ordered:
            dock = self.docks[cls.panel_id]
            dock.setFloating(False)
            dock.show()
            if cls.tab_with and cls.tab_with in placed:
                self.tabifyDockWidget(placed[cls.tab_with], dock)
            else:
                self.addDockWidget(AREAS.get(cls.area, Qt.RightDockWidgetArea), dock)
            placed[cls.panel_id] = dock
        for cls in self.docked_classes():   # the first of each tab group stays in front
            if not cls.tab_with:
                self.docks[cls.panel_id].raise_()
        self._default_sizes()

    def docked_classes(self) -> list:
        return [c for c in self.panel_classes if c.docked]

    def _default_sizes(self) -> None:
        """Proportions of the default layout: a short prompt strip, the big views wide."""
        by_area: dict[str, list[QDockWidget]] = {}
        for cls in self.docked_classes():
            if not cls.tab_with:
                by_area.setdefault(cls.area, []).append(self.docks[cls.panel_id])
        w, h = max(self.width(), 800), max(self.height(), 600)
        left, right = by_area.get("left", []), by_area.get("right", [])
        if left and right:
            self._side_width = int(w * SIDE_FRACTION)
            self._placing = True
            self.resizeDocks([left[0], right[0]], [self._side_width, w - self._side_width], Qt.Horizontal)
            self._placing = False
        vertical = [(d, int(h * 0.25)) for d in by_area.get("top", [])] + [(d, int(h * 0.3)) for d in by_area.get("bottom", [])]
        if vertical:
            self.resizeDocks([d for d, _ in vertical], [s for _, s in vertical], Qt.Vertical)

    def _side_dock(self) -> Optional[QDockWidget]:
        """The front dock of the left area, where the side panels (Model, Lessons) live."""
        shown = [d for d in self.docks.values() if not d.isHidden() and not d.isFloating()
                 and self.dockWidgetArea(d) == Qt.LeftDockWidgetArea]
        front = [d for d in shown if not d.visibleRegion().isEmpty()]
        return (front or shown or [None])[0]

    def side_width(self) -> Optional[int]:
        """The width the side docks keep when the window is resized."""
        return self._side_width

    def _keep_side_width(self) -> None:
        dock = self._side_dock()
        if dock is None or self._side_width is None:
            return
        target = min(self._side_width, int(self.width() * SIDE_MAX_FRACTION))
        others = [d for d in self.docks.values() if not d.isHidden() and not d.isFloating()
                  and self.dockWidgetArea(d) == Qt.RightDockWidgetArea]
        if abs(dock.width() - target) > 1 and others:
            self._placing = True
            try:   # Qt moves a separator only given the docks on both of its sides
                self.resizeDocks([dock, others[0]], [target, self.width() - target], Qt.Horizontal)
            finally:
                self._placing = False

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._laid_out_size = self.size()
        QTimer.singleShot(0, self, self._keep_side_width)   # after the dock layout took the new size

    def eventFilter(self, obj, event):
        # A side dock resized with the mouse button held while the window keeps its size:
        # the user dragged the separator; that width is the one to keep.
        if (event.type() == QEvent.Resize and not self._placing and isinstance(obj, QDockWidget)
                and QApplication.mouseButtons() & Qt.LeftButton
                and self._laid_out_size == self.size() and obj is self._side_dock() and obj.isVisible()):
            self._side_width = obj.width()
        return super().eventFilter(obj, event)

    def set_presenter_layout(self, on: bool) -> None:
        """Presenter layout: the side docks hidden so the main views take the whole width
        (the fonts are the workshop's, lab.ui.workshop.presenter); off puts back the
        layout from before."""
        if on == (self._state_before_presenter is not None):
            return
        self._placing = True
        try:
            if on:
                self._state_before_presenter = self.saveState(STATE_VERSION)
                for cls in self.docked_classes():
                    if cls.area == "left":
                        self.docks[cls.panel_id].hide()
            else:
                state, self._state_before_presenter = self._state_before_presenter, None
                self.restoreState(state, STATE_VERSION)
        finally:
            self._placing = False
        if not on:
            self._keep_side_width()

    def presenter_layout_shown(self) -> bool:
        return self._state_before_presenter is not None

    def showEvent(self, event):
        super().showEvent(event)
        if self._default_state is None:
            if not self._restored:
                self._default_sizes()
            QTimer.singleShot(0, self._take_default_state)

    def _take_default_state(self) -> None:
        if self._default_state is None:
            if not self._restored:
                self._default_sizes()
            self._default_state = self.saveState(STATE_VERSION)

    def show_panel(self, panel_id: str) -> bool:
        """Show a panel (even one the user closed) and bring it to the front; False if
        the lab has no such panel."""
        holder = self.docks.get(panel_id) or self.strips.get(panel_id)
        if holder is None:
            return False
        holder.show()
        holder.raise_()
        return True

    def bring_forward(self, panel_id: str) -> bool:
        """Bring a shown panel to the front of its tab group; False if it is closed."""
        holder = self.docks.get(panel_id) or self.strips.get(panel_id)
        if holder is None or holder.isHidden():
            return False
        holder.raise_()
        return True

    def front_docks(self) -> list[str]:
        """The panels whose docks are in front now (to put them back after an export)."""
        return [pid for pid, d in self.docks.items() if d.isVisible() and not d.visibleRegion().isEmpty()]

    def reset_layout(self) -> None:
        self._state_before_presenter = None
        if self._default_state is not None and not self._restored:
            self.restoreState(self._default_state, STATE_VERSION)
        else:
            self._default_layout()
        for dock in [*self.docks.values(), *self.strips.values()]:
            if dock.isHidden():
                dock.show()

    # --- status bar ------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.model_label = QLabel("No model loaded")
        self.model_label.setObjectName("status-model")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(180)
        self.progress_bar.setRange(0, 1000)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running job (Esc)")
        self.cancel_button.clicked.connect(lambda: self.session.cancel())
        for w in (self.progress_label, self.progress_bar, self.cancel_button):
            w.hide()
            bar.addPermanentWidget(w)
        bar.addWidget(self.model_label, 1)
        self.gpu_label = QLabel()
        self.gpu_label.setObjectName("status-gpu")
        self.gpu_label.hide()
        bar.addPermanentWidget(self.gpu_label)
        self.gpu_timer = QTimer(self, interval=2000)
        self.gpu_timer.timeout.connect(self._update_gpu_memory)

    def _update_gpu_memory(self) -> None:
        """Ask the worker (CUDA is not for the GUI thread) and show the answer."""
        self.session.request("status.gpu_memory", lambda _lm, _job: models.gpu_memory(),
                             self._show_gpu_memory, lambda _message: None,
                             label="reading GPU memory", needs_model=False, quiet=True)

    def _show_gpu_memory(self, rows) -> None:
        self.gpu_label.setVisible(bool(rows))
        self.gpu_label.setText("  ".join(
            f"{dev}: {format_bytes(used)} in use, peak {format_bytes(peak)} of {format_bytes(total)}"
            for dev, used, peak, total in rows))

    def _show_model(self, card) -> None:
        if card is None:
            self.model_label.setText("No model loaded")
            return
        if card.device.startswith("cuda") or card.device_map:
            self.gpu_timer.start()
            self._update_gpu_memory()
        else:
            self.gpu_timer.stop()
            self.gpu_label.hide()
        self.model_label.setText(
            f"{card.name} · {card.kind} · {format_count(card.params)} parameters · "
            f"{card.device} · {card.dtype} · weights {format_bytes(card.param_bytes)}")
        s = lab_settings.settings()
        s.setValue("last_model", card.ref)
        s.setValue("device", card.device)
        s.setValue("dtype", card.dtype)

    def _busy(self, busy: bool, label: str) -> None:
        for w in (self.progress_label, self.progress_bar, self.cancel_button):
            w.setVisible(busy)
        self.progress_label.setText(label)
        if busy:
            self.progress_bar.setValue(0)

    def _progress(self, fraction: float, stage: str) -> None:
        self.progress_bar.setValue(int(fraction * 1000))
        if stage:
            self.progress_label.setText(stage)

    def _error(self, message: str) -> None:
        self.statusBar().showMessage(message, 15000)

    # --- menus -----------------------------------------------------------------------------
    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        open_act = QAction("&Open model folder…", self, shortcut=QKeySequence.Open)
        open_act.triggered.connect(lambda: self.model_panel.choose_folder())
        file_menu.addAction(open_act)
        zoo_menu = file_menu.addMenu("Load &bundled model")
        for name in models.zoo_models():
            act = QAction(f"zoo:{name}", self)
            act.triggered.connect(lambda _=False, n=name: self.load_model(f"zoo:{n}"))
            zoo_menu.addAction(act)
        zoo_menu.setEnabled(bool(models.zoo_models()))
        file_menu.addSeparator()
        quit_act = QAction("&Quit", self, shortcut=QKeySequence.Quit)
        quit_act.triggered.connect(self.close)
        file_menu.addAction(quit_act)

        run_menu = mb.addMenu("&Run")
        analyse = QAction("&Analyse prompt", self, shortcut=QKeySequence("Ctrl+Return"))
        analyse.triggered.connect(lambda: self.panels["prompt"].submit())
        focus = QAction("&Focus prompt", self, shortcut=QKeySequence("Ctrl+L"))
        focus.triggered.connect(lambda: self.panels["prompt"].take_focus())
        cancel = QAction("&Cancel running job", self, shortcut=QKeySequence("Esc"))
        cancel.triggered.connect(lambda: self.session.cancel())
        for a in (analyse, focus, cancel):
            run_menu.addAction(a)

        self.view_menu = mb.addMenu("&View")
        for strip in self.strips.values():
            self.view_menu.addAction(strip.toggleViewAction())
        for i, (pid, dock) in enumerate(self.docks.items()):
            act = dock.toggleViewAction()
            if i < 9:
                act.setShortcut(QKeySequence(f"Alt+{i + 1}"))
            self.view_menu.addAction(act)
        self.view_menu.addSeparator()
        reset = QAction("&Reset layout", self, shortcut=QKeySequence("Ctrl+Shift+R"))
        reset.triggered.connect(self.reset_layout)
        self.view_menu.addAction(reset)
        theme_menu = self.view_menu.addMenu("&Theme")
        self.theme_group = QActionGroup(self)
        for name in lab_theme.THEMES:
            act = QAction(name.capitalize(), self, checkable=True)
            act.setData(name)
            act.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            self.theme_group.addAction(act)
            theme_menu.addAction(act)

        self.help_menu = mb.addMenu("&Help")
        fill_help_menu(self.help_menu, self, self.session)
        self.keys = ViewKeys(self, self.view_menu, self.help_menu, self.docks, self.panels)

    def set_theme(self, name: str) -> None:
        app = QApplication.instance()
        lab_theme.apply(app, name)
        lab_settings.settings().setValue("theme", name)
        for act in self.theme_group.actions():
            act.setChecked(act.data() == name)

    def load_model(self, ref: str, device: Optional[str] = None, dtype: Optional[str] = None) -> None:
        self.model_panel.load_ref(ref, device, dtype)

    # --- drag and drop a folder ---------------------------------------------------------
    def dragEnterEvent(self, event):
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if urls and urls[0].isLocalFile() and Path(urls[0].toLocalFile()).is_dir():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event):
        path = event.mimeData().urls()[0].toLocalFile()
        self.load_model(path)
        event.acceptProposedAction()

    # --- settings ------------------------------------------------------------------------
    def restore_settings(self) -> None:
        """Put back the saved size and layout; what cannot be used is named in
        ``restore_problems`` (the start's one notice) and the defaults stay."""
        s = lab_settings.settings()
        self.restore_problems = []
        geo = s.value("geometry")
        if geo is not None and not (isinstance(geo, QByteArray) and self.restoreGeometry(geo)):
            self.restore_problems.append("the saved window size could not be read")
            s.remove("geometry")
        state = s.value("window_state")
        if isinstance(state, QByteArray):
            self._placing = True
            self._restored = self.restoreState(state, STATE_VERSION)
            self._placing = False
        side = s.value("side_width")
        if side is not None and str(side).isdigit():
            self._side_width = int(side)
        if state is not None and not self._restored:
            self.restore_problems.append("the saved window layout could not be read: the default layout")
            s.remove("window_state")
        theme = s.value("theme", "system")
        for act in self.theme_group.actions():
            act.setChecked(act.data() == theme)

    def save_settings(self) -> None:
        s = lab_settings.settings()
        s.setValue("geometry", self.saveGeometry())
        # the layout the user made, never the presenter's (side docks hidden)
        s.setValue("window_state", self._state_before_presenter or self.saveState(STATE_VERSION))
        if self._side_width is not None:
            s.setValue("side_width", int(self._side_width))
        s.sync()

    def closeEvent(self, event):
        self.save_settings()
        self.session.shutdown()
        super().closeEvent(event)

