"""An offline tour of Gleitzeit through its Python API: plugins, a tool, a streamed LLM
reply, health. Runs with no network, no model and no API key.

    python3 examples/demo.py
"""

from __future__ import annotations

import asyncio

import gleitzeit


async def main() -> None:
    async with gleitzeit.Host() as host:
        print("Plugins:")
        for rec in host.plugins.listing():
            print(f"  {rec.name:<12} {rec.version or '-':<8} {rec.status}")

        print("\nProviders:")
        for inst in sorted(host.registry, key=lambda i: i.name):
            print(f"  {inst.name:<12} {inst.kind:<5} {', '.join(sorted(inst.methods))}")

        print("\nTool: calc/evaluate '2 * (3 + 4) ** 2'")
        result = await host.invoke("calc/evaluate", {"expression": "2 * (3 + 4) ** 2"})
        print(f"  result = {result['result']}")

        print("\nTool: calc/add routed to the calculator, then its output fed onward")
        total = await host.invoke("calc/add", {"a": 5, "b": 3})
        doubled = await host.invoke("calc/multiply", {"a": total["result"], "b": 2})
        print(f"  (5 + 3) * 2 = {doubled['result']}")

        print("\nLLM (offline echo model), streamed word by word:")
        print("  ", end="")
        messages = [{"role": "user", "content": "Gleitzeit routes every request to a provider."}]
        async for chunk in host.stream("llm/chat", {"model": "echo", "messages": messages}):
            print(chunk["token"], end="", flush=True)
            if chunk["done"]:
                print(f"\n  usage: {chunk.get('usage')}")

        print("\nErrors say what to do:")
        try:
            await host.invoke("calc/divide", {"a": 1, "b": 0})
        except gleitzeit.GleitzeitError as exc:
            print(f"  {type(exc).__name__}: {exc}")
        try:
            await host.invoke("llm/chat", {"model": "gpt-5", "messages": messages})
        except gleitzeit.GleitzeitError as exc:
            print(f"  {type(exc).__name__}: {exc}")

        print("\nHealth:")
        for inst in await host.check_health():
            print(f"  {inst.name:<12} {inst.health.status} {inst.health.detail or ''}")


if __name__ == "__main__":
    asyncio.run(main())
