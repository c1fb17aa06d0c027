"""A module that exists only in the test suite: the proof that adding a module is a folder, its descriptor,
one line in the list, its settings field and its migration branch (docs/architecture.md walks through it)."""
