"""Benchmarks: ``siliconvision`` against the raw ``openai`` SDK and the integrations
users would otherwise pick, side by side against ``LocalSiliconCloud`` on loopback.

Run ``make bench`` (or ``python -m benchmarks.run``); see ``benchmarks/README.md``.
"""
