"""Other engines' programming models on opsloom's engine (see :mod:`opsloom.compat.temporal`)."""
