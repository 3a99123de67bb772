"""modelyard-openai: OpenAI's own API (api.openai.com, or any server speaking it) as a provider.

``openai/<model>`` and bare OpenAI model names (``gpt-4o``, as LiteLLM reads them) resolve to
this plugin; the hooks live in :mod:`modelyard_openai.plugin`.
"""
