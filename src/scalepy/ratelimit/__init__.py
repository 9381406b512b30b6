"""Rate limiting: token bucket / GCRA and sliding-window policies, memory and Redis stores."""
