"""One module per evaluation task, registered in the ``openmuse.evals`` entry-point group.
Each module's docstring states the data it reads and the official scoring convention it follows."""
