"""Long waits are said on a terminal and silent elsewhere."""

import asyncio

from wdm_lib.progress import bar, noting_a_wait


def wait(enabled: bool, takes_s: float) -> None:
    async def go():
        with bar(1, "seeding", enabled) as pb:
            return await noting_a_wait(asyncio.sleep(takes_s, "reply"), pb, "waiting for the first reply", 0.2)
    assert asyncio.run(go()) == "reply"


def test_a_long_wait_is_said_where_the_bar_shows(capsys):
    wait(True, 1.0)
    assert "waiting for the first reply" in capsys.readouterr().err


def test_a_short_wait_or_a_hidden_bar_says_nothing(capsys):
    wait(True, 0.0)
    wait(False, 1.0)
    assert "waiting for the first reply" not in capsys.readouterr().err
