"""What the Azure OpenAI plugins share: URL building (:mod:`.urls`), error mapping (:mod:`.errors`) and
the proxy paths of ``AzureOpenAI`` clients (:mod:`.paths`)."""
