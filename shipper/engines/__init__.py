"""Search-engine adapters: one shared core, two thin clients."""
