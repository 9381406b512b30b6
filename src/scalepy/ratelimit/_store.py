"""The one narrow contract a rate-limit backend implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.ratelimit._decision import PolicyDecision
    from scalepy.ratelimit._policies import Policy

__all__ = ("RateLimitStore",)


@runtime_checkable
class RateLimitStore(Protocol):
    """Decides requests against shared state: memory (one process) or Redis (all replicas).

    Implementations decide all policies of one call atomically and all-or-nothing:
    when any policy denies, no policy's state changes.
    """

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Take `cost` from every policy's quota for `key` if all allow it.

        When nothing is consumed (a policy denies, or `commit` is false), every
        decision's `remaining` and `reset_after` describe the quota as it stays.

        Args:
            key: The identity being limited, e.g. `"client:1.2.3.4"`.
            policies: At least one policy; equal policies share state.
            cost: What the request costs, >= 0.
            commit: Consume when allowed; false only asks what `cost` would get.

        Returns:
            One decision per policy, in order.

        Raises:
            BackendError: The backend failed (Redis stores only).
        """
        ...

    async def reset(self, key: str, policies: Sequence[Policy]) -> None:
        """Forget `key`'s state under `policies`: their quotas are whole again.

        Raises:
            BackendError: The backend failed (Redis stores only).
        """
        ...

    async def aclose(self) -> None:
        """Release what the store holds (connections)."""
        ...
