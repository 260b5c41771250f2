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
        self._clients = {}  # pool index -> its one client

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)  # random among replicas: chosen once, here
        client = self._clients.get(index)
        if client is None:
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._clients[index] = self._client(connection_pool=self._pools[index])
        return client


class SharedClientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient
