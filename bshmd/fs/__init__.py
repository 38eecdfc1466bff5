"""File-system primitives every layer above may use: safe moves, scanning, mount facts."""
