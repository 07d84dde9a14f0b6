"""Runtime: processes (accelerate), the logger and progress bars, memory, precision, sharding, the
artifact cache and the hub. It knows nothing of the protocol, and imports nothing above it.
"""
