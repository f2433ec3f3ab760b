"""Command-line interface: ``deepstationing <command>``."""
