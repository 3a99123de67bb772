"""Test fixture: the `ext/` provider (an OpenAI-shaped upstream over HTTP), outside the repository's plugins."""
