"""Questions answered at once, read in one pass: the reader's inputs gathered across threads.

The Telegram bot answers several questions at once on a few threads. Each asks the reader for its
own passages; a `Gatherer` runs those reads on one thread of its own, taking together whatever
arrived while the last pass ran, and waiting a few milliseconds for more while other answers are
on their way (`others()`: how many are being answered now). One question alone waits for nothing.
Each answer keeps its own path through `AnswerEngine.ask`, so whatever rides along with a question
stays with it; only the forward pass is shared.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.reader_format import PairEncoding

# A pass reads at most this many passages (50 questions' 5 each at once are read in a few passes).
MAX_ROWS = 40


@dataclass
class _Request:
    encodings: Sequence[PairEncoding]
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Any] | None = None
    error: BaseException | None = None


class Gatherer:
    """Runs `forward` over the inputs of every request that arrives together."""

    def __init__(
        self,
        forward: Callable[[Sequence[PairEncoding]], list[Any]],
        window: float,
        others: Callable[[], int],
    ) -> None:
        self._forward = forward
        self.window = window
        self._others = others
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="articlebot-reader", daemon=True)
        self._thread.start()
        # Passes run and requests read, for the benchmark.
        self.passes = 0
        self.requests = 0
        self._closed = False

    def scores(self, encodings: Sequence[PairEncoding]) -> list[Any]:
        """What `forward(encodings)` gives, read together with other threads' requests."""
        if self._closed:
            return self._forward(encodings)
        request = _Request(encodings)
        self._queue.put(request)
        while not request.done.wait(1.0):
            if not self._thread.is_alive():  # closed as this request arrived
                return self._forward(encodings)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = [first]
            rows = len(first.encodings)
            deadline = time.monotonic() + self.window
            while rows < MAX_ROWS:
                try:
                    # Whatever is queued already; then wait while more answers are on their way.
                    if self._others() > len(batch):
                        item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    else:
                        item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # close after this pass
                    break
                batch.append(item)
                rows += len(item.encodings)
            self._run(batch)
        # Closed: whatever arrived meanwhile is still read.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._run([item])

    def _run(self, batch: list[_Request]) -> None:
        self.passes += 1
        self.requests += len(batch)
        try:
            scores = self._forward([e for request in batch for e in request.encodings])
        except Exception as error:
            if len(batch) == 1:
                batch[0].error = error
                batch[0].done.set()
                return
            # Read each alone, so that only the request that fails gets the error.
            for request in batch:
                self._run([request])
            return
        start = 0
        for request in batch:
            request.result = scores[start : start + len(request.encodings)]
            start += len(request.encodings)
            request.done.set()
