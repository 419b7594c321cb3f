"""Median time of each stage of a chain, each stage fed with what the stages before it produced; free of any deep
learning framework so that both sides of ``src.tools.benchmark --stages`` (MindSpore here, torch in the peer's
process) share it."""
import statistics
import time
from typing import Any, Callable, Dict, Sequence, Tuple

Stage = Tuple[str, Callable[[Dict[str, Any]], Dict[str, Any]]]


def time_stages(stages: Sequence[Stage], inputs: Dict[str, Any], steps: int,
                sync: Callable[[], None] = lambda: None) -> Dict[str, float]:
    """{stage name: median milliseconds over ``steps`` calls} of ``stages`` run in order. A stage takes the values made
    so far (``inputs``, then every earlier stage's outputs, by name) and returns its outputs by name. Each stage is
    called once untimed first (GRAPH compilation, warm-up); the outputs of that call feed the later stages, so their
    inputs are computed once, outside the timing. ``sync`` waits for asynchronous work to finish."""
    values = dict(inputs)
    medians = {}
    for name, stage in stages:
        outputs = stage(values)
        sync()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            stage(values)
            sync()
            times.append(time.perf_counter() - start)
        medians[name] = round(1000.0 * statistics.median(times), 2)
        values.update(outputs)
    return medians


def time_backward(forward: Callable[[], Any], step: Callable[[], Any], steps: int,
                  sync: Callable[[], None] = lambda: None) -> float:
    """Median milliseconds of a training step's backward pass and update: over ``steps`` pairs, the time of ``step``
    (forward, backward, update) minus the time of ``forward`` (the same forward pass alone) measured just before it,
    so that both sides of each difference see the same machine load. Each is called once untimed first."""
    differences = []
    for index in range(steps + 1):
        start = time.perf_counter()
        forward()
        sync()
        middle = time.perf_counter()
        step()
        sync()
        if index:
            differences.append((time.perf_counter() - middle) - (middle - start))
    return round(1000.0 * statistics.median(differences), 2)
