"""Training the zoo from scratch: ``train`` (the three zoo models), ``sweep`` (the scaling
runs), ``corpus`` (the Shakespeare plays) and ``dates`` (the dates task)."""
