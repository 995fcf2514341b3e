"""Rendering off the event loop: one worker thread for the whole process."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from bot.charts.render import render_png
from monitors.base import Series


class ChartRenderer:
    """Renders off the event loop, one chart at a time.

    A chart keeps a core busy for ~30 ms (and ~200 ms the first time, importing matplotlib), which would
    stall every other text on the loop. One worker thread, not many: matplotlib does not promise thread
    safety (its font and text caches are shared), and charts queue for a few tens of milliseconds at worst.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charts")

    async def png(
        self, series: Sequence[Series], *, title: str, unit: str, width_px: int, height_px: int, now: float | None
    ) -> bytes:
        job = functools.partial(
            render_png, series, title=title, unit=unit, width_px=width_px, height_px=height_px, now=now
        )
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
