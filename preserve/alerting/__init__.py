"""Alert delivery pieces used by preserve.alerts (which is the public entry point: import from there)."""
