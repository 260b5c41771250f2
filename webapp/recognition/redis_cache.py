"""Django's Redis cache backend, with one Redis client per connection pool.

Django's backend builds a new ``redis.Redis`` for every get and set. Since redis-py 5 each
one fills its own table of response callbacks, which costs more than the command it
sends; a request that authenticates, is throttled and waits did three of them. (Django
gives each thread its own cache object, so each thread keeps its own clients and pools.)
"""
from __future__ import annotations

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}  # connection pool -> its one client

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)  # Django's choice of server and its pool
        client = self._clients.get(pool)
        if client is None:
            client = self._clients[pool] = self._client(connection_pool=pool)
        return client


class SharedClientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient
