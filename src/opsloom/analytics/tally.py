"""In-process counters and histograms that cost a dictionary update on the hot path.

``prometheus_client``'s own metric objects take a lock and walk their buckets on every
observation; here everything is written from the event loop thread only, so a counter is a
dict entry and a histogram observation is one ``bisect`` and two list updates. The families are
turned into Prometheus samples only when scraped (:meth:`Tally.family`, :meth:`Spread.family`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

#: Durations from a millisecond to a day: steps are fast, runs may wait for people.
DURATION_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    21600.0,
    86400.0,
)
#: Operations per committed write batch (group commit).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class Tally:
    """A counter family: one running total per tuple of label values."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...] = (), amount: float = 1.0) -> None:
        """Add ``amount`` to the series of ``key`` (label values in the order of ``labels``)."""
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def value(self, key: tuple[str, ...] = ()) -> float:
        """The current total of one series (0 when never counted)."""
        return self.values.get(key, 0.0)

    def family(self) -> CounterMetricFamily:
        """The samples to expose."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in sorted(self.values.items()):
            family.add_metric(key, value)
        return family


class Spread:
    """A histogram family: per tuple of label values, counts per bucket and a sum."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.bounds = tuple(float(b) for b in buckets)
        # Per series: one count per bound, one for +Inf, then the sum of observed values.
        self.series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        """Record one observation in the series of ``key``."""
        counts = self.series.get(key)
        if counts is None:
            counts = self.series[key] = [0.0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def count(self, key: tuple[str, ...] = ()) -> int:
        """How many observations one series holds."""
        counts = self.series.get(key)
        return 0 if counts is None else int(sum(counts[:-1]))

    def family(self) -> HistogramMetricFamily:
        """The samples to expose, with cumulative buckets as Prometheus expects."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        names = [repr(b) for b in self.bounds] + ["+Inf"]
        for key, counts in sorted(self.series.items()):
            running = 0.0
            buckets: list[tuple[str, float]] = []
            for name, count in zip(names, counts[:-1], strict=True):
                running += count
                buckets.append((name, running))
            family.add_metric(key, buckets, counts[-1])
        return family
