"""User-facing errors: the CLI prints their message as one line and exits 2."""


class BlendError(Exception):
    """Bad input or configuration; the message names the file, key or field at fault."""


class ConfigError(BlendError):
    """One or more configuration problems, one ``path: problem`` line each."""

    def __init__(self, problems: list[str], source: str | None = None,
                 sources: list[str | None] | None = None) -> None:
        """``sources``, when given, names each problem's origin (e.g. a ``--set`` on the
        command line rather than the file); else every problem is ``source``'s."""
        self.problems = list(problems)
        self.source = source
        self.sources = list(sources) if sources is not None else [source] * len(self.problems)
        super().__init__("\n".join((f"{s}: " if s else "") + p for s, p in zip(self.sources, self.problems)))


class DataError(BlendError):
    """A data file or array does not meet the data contract."""


class PluginError(BlendError):
    """A plugin is malformed (bad hook, duplicate component name)."""


class TrainingDiverged(BlendError):
    """A role's validation loss is not finite: a result (the settings do not train), not a success.

    The CLI prints it as one line and exits 3, keeping the run directory (its log and
    history show the divergence)."""
