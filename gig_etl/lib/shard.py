"""A shard of one integration's drain: partition p belongs to shard p mod N (no
Dagster imports). Each shard is a run of its own: its own partitions, so its own
offsets, and a lock of its own beside the integration's shared one."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPELLED = re.compile(r"(\d+)/(\d+)")


@dataclass(frozen=True)
class Shard:
    index: int  # 0 .. count - 1
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count} does not exist: 0 <= shard < count")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """From `K/N`, shard K of N."""
        match = _SPELLED.fullmatch(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a shard such as 0/2 (shard 0 of 2)")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def name(self) -> str:
        """In file and lock names: `shard-K-of-N`."""
        return f"shard-{self.index}-of-{self.count}"

    def owns(self, partition: int) -> bool:
        return partition % self.count == self.index

    def __str__(self) -> str:
        return f"shard {self.index}/{self.count}"


def all_shards(count: int) -> list[Shard]:
    return [Shard(index, count) for index in range(count)]


def lag_key(topic: str, shard: Shard | None) -> str:
    """What a drain's lag is recorded under: the topic, or a shard's own partitions of it."""
    return topic if shard is None else f"{topic}#{shard.name}"
