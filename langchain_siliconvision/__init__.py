"""SiliconCloud vision models for LangChain (adapter: see issue 3)."""
