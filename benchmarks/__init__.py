"""Benchmarks of ns.mitogen against plain OpenSSH, on the real SSH testbed.

Run ``python -m benchmarks.core --help``; see ``benchmarks/README.md``.
"""
