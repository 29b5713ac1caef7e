"""The command line: thin Typer adapters over preserve.repository.Repository."""
