"""The Azure OpenAI Responses API for modelyard: the ``responses`` operations of the ``azure`` provider."""
