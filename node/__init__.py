"""One node: NodeCore (replica + application + mempool + store), storage, genesis/config, aiohttp runtime."""
