"""The XenAPI facts the simulator follows (datamodel.json, errors.json) as package data,
and ``regenerate``, which rebuilds them from the xapi project's sources (README.md here)."""
