"""coin-sync: keeps every coin of the market-data backend current, one pass at a time."""

__version__ = "0.1.0"
