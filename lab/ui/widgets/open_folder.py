"""An "Open folder" button: shows a finished result's folder in the desktop's file manager."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QPushButton, QWidget


def open_folder(folder) -> bool:
    """Open ``folder`` with the desktop's file manager (QDesktopServices); False if none did."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


class OpenFolderButton(QPushButton):
    """Hidden until ``set_folder`` gives it a folder that exists."""

    def __init__(self, text: str = "Open folder", parent: Optional[QWidget] = None):
        super().__init__(text, parent)
        self.folder: Optional[Path] = None
        self.clicked.connect(self._open)
        self.hide()

    def set_folder(self, folder) -> None:
        self.folder = Path(folder) if folder else None
        shown = self.folder is not None and self.folder.is_dir()
        self.setVisible(shown)
        self.setToolTip(f"Show {self.folder} in the file manager" if shown else "")

    def _open(self) -> None:
        if self.folder is not None:
            open_folder(self.folder)
