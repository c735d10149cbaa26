"""The link between processes: the versioned msgpack message table, the ZeroMQ sockets,
CURVE security and the operator commands (estop, clear) that talk to a running plant.
"""
