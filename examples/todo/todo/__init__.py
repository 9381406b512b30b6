"""The Todo API: a service composed from scalepy's primitives."""
