"""Workshop mode: run lessons (runner), presenter options (presenter), session export
(export) and the Lessons menu (menu). The main window creates a LessonRunner and a
LessonsMenu and wires them to its panels; nothing here adds attributes to the window.
"""
from lab.ui.workshop.export import export_session, export_to, session_data, session_html
from lab.ui.workshop.menu import LessonsMenu
from lab.ui.workshop.presenter import (
    HIGH_CONTRAST,
    LARGE_FONT_SCALE,
    large_fonts_on,
    presenter_layout_shown,
    reset_everything,
    set_large_fonts,
    set_presenter_layout,
)
from lab.ui.workshop.runner import LessonRunner, same_model

__all__ = ["HIGH_CONTRAST", "LARGE_FONT_SCALE", "LessonRunner", "LessonsMenu", "export_session", "export_to",
           "large_fonts_on", "presenter_layout_shown", "reset_everything", "same_model", "session_data", "session_html",
           "set_large_fonts", "set_presenter_layout"]
