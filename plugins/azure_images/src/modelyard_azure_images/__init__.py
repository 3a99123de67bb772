"""Azure OpenAI images for modelyard: the ``image_generation`` and ``image_edit`` operations of the ``azure`` provider."""
