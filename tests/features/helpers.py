"""Small things several feature tests do (pytest puts this directory on the import path)."""


def drain(channel, queue):
    """Every ready message of `queue`, taken with basic.get and no ack, as text."""
    bodies = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body.decode())
