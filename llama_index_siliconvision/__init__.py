"""SiliconCloud vision models for LlamaIndex (adapter: see issue 4)."""
