"""CLI command modules; bench.cli imports each of them, and each adds its commands to bench.cli.app."""
