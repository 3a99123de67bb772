"""What the Azure OpenAI plugins share: URL building (:mod:`.urls`) and error mapping (:mod:`.errors`)."""
