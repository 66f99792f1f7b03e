def load_and_wait(qtbot, session, folder, timeout=30000):
    """Load a model through the worker and wait until the session has it."""
    with qtbot.waitSignal(session.model_changed, timeout=timeout):
        session.load_model(str(folder))
    return session.card
