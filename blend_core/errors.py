"""User-facing errors: the CLI prints their message as one line and exits 2."""


class BlendError(Exception):
    """Bad input or configuration; the message names the file, key or field at fault."""


class ConfigError(BlendError):
    """One or more configuration problems, one ``path: problem`` line each."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + p for p in self.problems))


class DataError(BlendError):
    """A data file or array does not meet the data contract."""


class PluginError(BlendError):
    """A plugin is malformed (bad hook, duplicate component name)."""
