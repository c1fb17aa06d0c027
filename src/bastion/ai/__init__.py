"""The AI gateway: OpenAI-format chat over configured providers, with fallback, caps and budgets."""
