"""Node storage: the Store interface with LevelDB (plyvel) and in-memory implementations."""
