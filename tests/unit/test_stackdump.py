"""streams.faust.stackdump: where a task waits, through the generators it awaits."""

import asyncio
import io

from streams.faust.stackdump import awaiting, dump_stacks


async def _numbers():
    yield 1
    await asyncio.sleep(60)
    yield 2


async def _consumer():
    async for _ in _numbers():
        await asyncio.sleep(0)


def test_a_task_is_followed_into_the_async_generator_it_iterates():
    async def main() -> tuple[list[str], str]:
        task = asyncio.create_task(_consumer())
        await asyncio.sleep(0.05)
        out = io.StringIO()
        try:
            return awaiting(task.get_coro()), dump_stacks(out)
        finally:
            task.cancel()

    lines, text = asyncio.run(main())
    names = [line.split()[-1] for line in lines if " " in line]
    assert names[:3] == ["_consumer", "_numbers", "sleep"], lines
    assert "--- thread MainThread" in text and "_numbers" in text
