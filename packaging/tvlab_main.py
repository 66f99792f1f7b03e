"""Entry point of the PyInstaller bundle: the same as `python -m lab`."""
import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
