"""Typed, async-first scalability primitives for Python services.

`import scalepy` loads only the standard library; each primitive and integration
lives in its own subpackage and pulls in its optional dependency when imported.
"""

from scalepy.errors import BackendError as BackendError
from scalepy.errors import BackendTimeout as BackendTimeout
from scalepy.errors import BackendUnavailable as BackendUnavailable
from scalepy.errors import ConfigurationError as ConfigurationError
from scalepy.errors import ScalepyError as ScalepyError
from scalepy.errors import SerializationError as SerializationError

__version__ = "0.1.0.dev0"

__all__ = (
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ConfigurationError",
    "ScalepyError",
    "SerializationError",
    "__version__",
)
