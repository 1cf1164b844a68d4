"""transmissions' management commands."""
