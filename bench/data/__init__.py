"""Tasks and corpora: the records a task hands the harness, corpus readers, answer normalisation, the leak audit."""
