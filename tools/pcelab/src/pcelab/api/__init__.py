"""Endpoint modules. Every module here is imported at start-up; see tools/pcelab/HACKING.md for the contract
(ROUTES, register_cli, label_reference_check, setup)."""
