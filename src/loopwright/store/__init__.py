"""Store adapters: implementations of the ports in :mod:`loopwright.loop.ports`."""
