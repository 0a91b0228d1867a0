"""The spawn's progress log (progress.py): each phase's share of the bar,
estimates from the elapsed time, percentages that never go back, and the
stream the hub's progress API reads."""

from __future__ import annotations

import asyncio

import pytest

from aml_jupyterhub.progress import PHASES, ProgressLog, fmt_elapsed


@pytest.mark.parametrize("seconds,text", [(0, "0s"), (59.9, "59s"), (60, "1m 00s"), (125, "2m 05s"), (3600, "60m 00s")])
def test_elapsed_time_as_people_read_it(seconds, text):
    assert fmt_elapsed(seconds) == text


def test_an_event_is_the_percentage_and_the_message():
    log = ProgressLog()
    event = log.emit("prepare", "Reading the workspace.")
    assert event == {"progress": 0, "message": "Reading the workspace."}
    assert log.events == [event]


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_each_phase_runs_from_its_start_to_its_end(phase):
    low, high, _ = PHASES[phase]
    start, end = ProgressLog(), ProgressLog()
    assert start.emit(phase, "begun", fraction=0.0)["progress"] == low
    assert end.emit(phase, "done", fraction=1.0)["progress"] == high


def test_a_fraction_is_clamped_to_the_phase():
    low, high, _ = PHASES["create"]
    log = ProgressLog()
    assert log.emit("create", "a", fraction=-3)["progress"] == low
    assert log.emit("create", "b", fraction=0.5)["progress"] == int(low + (high - low) * 0.5)
    assert log.emit("create", "c", fraction=7)["progress"] == high


def test_without_a_fraction_the_elapsed_time_estimates_and_stops_short_of_the_end():
    low, high, typical = PHASES["create"]
    log = ProgressLog()
    assert log.emit("create", "a", elapsed=typical / 2)["progress"] == int(low + (high - low) * 0.5)
    capped = log.emit("create", "b", elapsed=typical * 10)["progress"]
    assert capped == int(low + (high - low) * 0.9) < high  # an estimate never claims the phase is over


def test_no_time_and_no_fraction_is_the_phases_start():
    assert ProgressLog().emit("install", "Installing.")["progress"] == PHASES["install"][0]


def test_the_bar_never_goes_back():
    log = ProgressLog()
    log.emit("create", "nearly there", fraction=1.0)
    assert log.emit("create", "AML's estimate dropped", fraction=0.1)["progress"] == PHASES["create"][1]
    # a later phase that starts below where the bar is (start after create) does not pull it back
    assert log.emit("start", "starting", fraction=0.0)["progress"] == PHASES["create"][1]
    assert log.emit("launch", "launching", fraction=0.0)["progress"] == PHASES["launch"][0]


def test_an_unknown_phase_keeps_the_bar_where_it_is():
    log = ProgressLog()
    log.emit("connect", "connected", fraction=1.0)
    assert log.emit("something-new", "a note")["progress"] == PHASES["connect"][1]


def test_the_stream_gives_every_event_in_order_then_ends():
    async def run():
        log = ProgressLog()

        async def spawner():
            for i in range(3):
                await asyncio.sleep(0.01)
                log.emit("create", f"step {i}", fraction=i / 2)
            log.finish()

        task = asyncio.create_task(spawner())
        seen = [event["message"] async for event in log.stream()]
        await task
        return seen

    assert asyncio.run(asyncio.wait_for(run(), 5)) == ["step 0", "step 1", "step 2"]


def test_a_reader_that_comes_late_gets_everything_and_no_wait():
    async def run():
        log = ProgressLog()
        log.emit("prepare", "one")
        log.emit("create", "two")
        log.finish()
        return [event["message"] async for event in log.stream()]

    assert asyncio.run(asyncio.wait_for(run(), 0.5)) == ["one", "two"]


def test_two_readers_each_get_every_event():
    async def run():
        log = ProgressLog()
        readers = [asyncio.create_task(collect(log)) for _ in range(2)]
        await asyncio.sleep(0.01)
        log.emit("prepare", "one")
        await asyncio.sleep(0.01)
        log.emit("create", "two")
        log.finish()
        return await asyncio.gather(*readers)

    async def collect(log):
        return [event["message"] async for event in log.stream()]

    assert asyncio.run(asyncio.wait_for(run(), 5)) == [["one", "two"], ["one", "two"]]
