"""The kernel: shared types, the error tree, the unified entities, identifiers and input
checks. Imports nothing else of the project, so every layer above may use it."""
