# SPDX-License-Identifier: MIT
# A backend for tests/scale_out: every line a client sends is answered with
# "NAME LINE", on long-lived TCP connections (asyncio: hundreds at once).
# Usage: so_server.py NAME PORT
import asyncio
import sys

NAME, PORT = sys.argv[1].encode(), int(sys.argv[2])


async def serve(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(NAME + b" " + line)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main():
    srv = await asyncio.start_server(serve, "0.0.0.0", PORT, backlog=1024, reuse_address=True)
    async with srv:
        await srv.serve_forever()


asyncio.run(main())
