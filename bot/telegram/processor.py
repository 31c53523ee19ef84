"""How many updates are handled at once, and how many of them one person may hold."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

log = logging.getLogger(__name__)

# python-telegram-bot's own semaphore is taken before `do_process_update` runs (its
# `process_update` is final), so an update waiting there for its sender's turn would hold one of
# the shared slots. It is set wide open; the limits below decide.
_OPEN = 2**31 - 1


class FairUpdateProcessor(BaseUpdateProcessor):
    """At most `slots` updates handled at once, and at most `per_user` of them from one person.

    An update first waits for its sender's turn, then for a shared slot, so a flood from one
    person queues behind itself while everyone else's updates go through. Handlers spend most
    of their time waiting on Telegram (a group may get 20 messages a minute), which is what lets
    one busy person fill every slot otherwise.

    `on_arrival` is called with each update as it arrives, before it waits for anything: what must
    be counted when an update comes, not when its turn does, is counted there.
    """

    def __init__(self, slots: int, per_user: int, on_arrival: Callable[[object], None] | None = None) -> None:
        if not 1 <= per_user <= slots:
            raise ValueError(f"per_user must be from 1 to slots ({slots}), not {per_user}")
        super().__init__(_OPEN)
        self.slots = slots
        self.per_user = per_user
        self.on_arrival = on_arrival
        self._shared = asyncio.BoundedSemaphore(slots)
        # An entry lives only while that person has updates in flight.
        self._turns: dict[int, _Turns] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        sender = _sender_id(update)
        started = False
        try:
            if self.on_arrival is not None:
                try:
                    self.on_arrival(update)
                except Exception:  # the update is still handled; its handlers count it then
                    log.exception(
                        "update %s: counting it on arrival failed", getattr(update, "update_id", None)
                    )
            if sender is None:
                async with self._shared:
                    started = True
                    await coroutine
                return
            turns = self._turns.setdefault(sender, _Turns(asyncio.BoundedSemaphore(self.per_user)))
            turns.updates += 1
            try:
                async with turns.semaphore, self._shared:
                    started = True
                    await coroutine
            finally:
                turns.updates -= 1
                if turns.updates == 0:
                    del self._turns[sender]
        finally:
            if not started and inspect.iscoroutine(coroutine):
                coroutine.close()  # cancelled while waiting: never "never awaited"

    async def initialize(self) -> None:
        """Nothing to set up: the semaphores live as long as the processor."""

    async def shutdown(self) -> None:
        """Nothing to free."""


@dataclass
class _Turns:
    """One person's share of the slots."""

    semaphore: asyncio.BoundedSemaphore
    updates: int = 0  # theirs in a slot or waiting for one


def _sender_id(update: object) -> int | None:
    if isinstance(update, Update) and update.effective_user is not None:
        return update.effective_user.id
    return None
