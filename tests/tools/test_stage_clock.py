"""The stage clock: medians per stage, stages fed with earlier outputs, and the backward pass as the paired difference
of step and forward. A fake clock that each call advances by a known amount makes every expected value exact."""
import pytest

from src.tools import stage_clock


class FakeClock:
    """``perf_counter`` replacement: time moves only when a timed callable says how long it took."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(stage_clock.time, "perf_counter", fake)
    return fake


def test_time_stages_reports_each_stage_median_and_feeds_later_stages(clock):
    durations = {"a": iter([0.5, 0.010, 0.030, 0.020]), "b": iter([0.7, 0.002, 0.004, 0.100])}
    seen = []

    def stage_a(values: dict) -> dict:
        clock.spend(next(durations["a"]))
        return {"doubled": 2 * values["x"]}

    def stage_b(values: dict) -> dict:
        clock.spend(next(durations["b"]))
        seen.append(values["doubled"])
        return {}

    syncs = []
    medians = stage_clock.time_stages([("a", stage_a), ("b", stage_b)], {"x": 21}, 3, lambda: syncs.append(1))
    assert medians == {"a": 20.0, "b": 4.0}  # the untimed first calls (0.5 s, 0.7 s) are left out
    assert seen == [42, 42, 42, 42]
    assert len(syncs) == 8


def test_time_backward_is_the_median_of_paired_step_minus_forward(clock):
    forward_times = iter([1.0, 0.010, 0.050, 0.012])
    step_times = iter([2.0, 0.035, 0.080, 0.100])

    medians = stage_clock.time_backward(lambda: clock.spend(next(forward_times)),
                                        lambda: clock.spend(next(step_times)), 3)
    assert medians == pytest.approx(30.0)  # pairs 25, 30, 88 ms after the untimed first pair
