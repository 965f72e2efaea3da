"""Subcommands of `seisflows-eara`; each module appends to seisflows_eara.cli.COMMANDS."""
