"""spikard's developer tools, as subcommands of the ``spikard`` command (entry-point
group ``spikard.commands``): ``dev`` now; ``profile`` and ``bench`` to come."""

__version__ = "0.1.0"
