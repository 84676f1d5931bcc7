"""sense-hub: Hub-native text-to-SQL training data and models (SENSE, SPFT-SQL)."""

__version__ = "0.1.0"
