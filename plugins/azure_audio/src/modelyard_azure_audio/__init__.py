"""Azure OpenAI audio for modelyard: the ``speech``, ``transcriptions`` and ``translations`` operations of the ``azure`` provider."""
