"""Run one coroutine per sample, all samples of a batch in lock step, one model call per round.

ART's slow attacks loop over samples and, inside, over their own search (C&W-L-inf's tau / const / Adam
loops, Boundary's random walk), calling the model once per step of ONE sample. The batched attacks keep
that per-sample code as it is, written as a generator that ``yield``s what it needs evaluated (a point, a
set of candidates) and receives the answer. ``run`` advances all generators of a batch together: every
round, the requests of all samples still running are answered by one ``evaluate`` call (one compiled
graph), so the number of model calls per round is one, not one per sample.
"""
from __future__ import annotations

from typing import Any, Callable, Generator, Sequence

Flow = Generator[Any, Any, Any]


def run(flows: Sequence[Flow], evaluate: Callable[[list], list], progress=None) -> list:
    """The return values of ``flows``; ``evaluate(requests)`` answers one round's requests, in order.
    ``progress`` (a tqdm bar or None) is advanced by one per finished flow."""
    results: list = [None] * len(flows)
    pending: dict[int, Any] = {}

    def advance(i: int, answer=None, first: bool = False) -> None:
        try:
            pending[i] = next(flows[i]) if first else flows[i].send(answer)
        except StopIteration as stop:
            results[i] = stop.value
            pending.pop(i, None)
            if progress is not None:
                progress.update(1)

    for i in range(len(flows)):
        advance(i, first=True)
    while pending:
        ids = list(pending)
        answers = evaluate([pending[i] for i in ids])
        if len(answers) != len(ids):
            raise RuntimeError(f"evaluate answered {len(answers)} of {len(ids)} requests")
        for i, answer in zip(ids, answers):
            advance(i, answer)
    return results
