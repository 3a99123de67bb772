"""Azure OpenAI embeddings for modelyard: the ``embeddings`` operation of the ``azure`` provider."""
