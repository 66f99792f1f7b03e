"""Qt side of the lab. Never does model work on the GUI thread: see worker.py."""
