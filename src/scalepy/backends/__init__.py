"""Storage backends: URL parsing and key layout shared by every primitive's stores.

The Redis connection layer lives in `scalepy.backends.redis` (the `redis` extra);
importing this package needs only the standard library.
"""

from scalepy.backends._masking import mask_url as mask_url
from scalepy.backends._masking import redact as redact
from scalepy.backends._url import BackendConfig as BackendConfig
from scalepy.backends._url import MemoryConfig as MemoryConfig
from scalepy.backends._url import RedisClusterConfig as RedisClusterConfig
from scalepy.backends._url import RedisConfig as RedisConfig
from scalepy.backends._url import parse_backend_url as parse_backend_url
from scalepy.backends.keys import KeySpace as KeySpace
from scalepy.backends.keys import hash_tag as hash_tag

__all__ = (
    "BackendConfig",
    "KeySpace",
    "MemoryConfig",
    "RedisClusterConfig",
    "RedisConfig",
    "hash_tag",
    "mask_url",
    "parse_backend_url",
    "redact",
)
