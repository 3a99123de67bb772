"""A third-party model family, as an outside author would ship it (test fixture)."""
