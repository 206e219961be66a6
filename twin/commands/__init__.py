"""Subcommands of the `twin` CLI, one module per stage."""
