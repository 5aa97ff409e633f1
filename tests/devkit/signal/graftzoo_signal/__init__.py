"""graftzoo-signal: 1-D sensor-signal classification for Graftzoo (a test plugin)."""
