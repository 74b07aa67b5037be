"""Local stand-ins for the platforms' APIs, speaking their real wire formats on 127.0.0.1.

Used by the tests, the benchmarks and `innoverheid demo`; never by a real harvest.
"""
