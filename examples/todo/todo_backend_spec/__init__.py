"""The public Todo-Backend spec suite in Chromium against the demo stack (scripts/todo_spec.sh)."""
