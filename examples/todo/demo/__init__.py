"""The demo of the Todo API: its stack on this machine (no Docker) and a scripted tour."""
