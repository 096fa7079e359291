"""The `tickplane` command: one entry point, subcommands contributed by each part."""
