"""The /v1 gateway routes to remote providers (subprocesses) like any other caller:
load is shared, and a provider killed mid-call costs no request."""

from __future__ import annotations

import asyncio
import signal

import openai

from tests.test_remote import TOKEN, procs, remote, serve, wait_until  # noqa: F401


async def test_gateway_requests_survive_sigkill_of_one_of_two_remote_instances(serve, procs):  # noqa: F811
    server = await serve()
    victim = procs.provider("remote_providers:SlowChat", server.url)
    procs.provider("remote_providers:SlowChat", server.url)
    await wait_until(lambda: len(remote(server, "slowchat")) == 2, "two instances")
    instances = remote(server, "slowchat")
    client = openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{server.url}/v1", max_retries=0)

    async def one(i: int) -> str:
        resp = await client.chat.completions.create(
            model="slow-1", messages=[{"role": "user", "content": f"n{i}"}]
        )
        return resp.choices[0].message.content or ""

    try:
        tasks = [asyncio.ensure_future(one(i)) for i in range(50)]
        await wait_until(lambda: all(i.in_flight > 0 for i in instances), "load on both")
        victim.send_signal(signal.SIGKILL)
        answers = await asyncio.gather(*tasks)
    finally:
        await client.close()

    assert [a.split(" from ")[0] for a in answers] == [f"n{i}" for i in range(50)]
    assert str(victim.pid) not in {a.split(" from ")[1] for a in answers}
    assert len(remote(server, "slowchat")) == 1
