"""Command-line interface: one module per subcommand."""


class CliError(Exception):
    """A user mistake or an unreachable cluster: printed in one line, exit status 2."""
