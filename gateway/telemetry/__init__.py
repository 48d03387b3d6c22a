"""Observing requests: spans of an operation, its loader batches, backend queries and audit
write (``spans``), and their export over OTLP (``otlp``). Imports only the kernel."""
