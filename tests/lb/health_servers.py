# SPDX-License-Identifier: MIT
# Misbehaving servers for the health check tests, all in one asyncio process:
#   health_servers.py MODE:PORT ...      (listens on all addresses, IPv4)
# MODE: ok (HTTP 200, chunked body "ok"), 503, hang (accepts, never answers),
# reset (reads the request, answers with a TCP RST), slow (a 20-byte body,
# one byte per 200 ms), flap (200 and 503 in turns), banner (TCP: "PING" ->
# "+PONG"), udp (UDP: replies "pong " + payload), many (PORT is FIRST-LAST:
# HTTP 200 on every port of the range). Prints "ready" once all listen.
import asyncio
import socket
import struct
import sys

flap_count = {}


async def read_head(reader):
    try:
        await reader.readuntil(b"\r\n\r\n")
        return True
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return False


def handler(mode, port):
    async def serve(reader, writer):
        try:
            if mode == "banner":
                line = await reader.readline()
                if line.strip() == b"PING":
                    writer.write(b"+PONG\r\n")
                    await writer.drain()
                return
            if not await read_head(reader):
                return
            if mode == "hang":
                await asyncio.sleep(3600)
                return
            if mode == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            status = 200
            if mode == "503":
                status = 503
            elif mode == "flap":
                n = flap_count.get(port, 0)
                flap_count[port] = n + 1
                status = 200 if n % 2 == 0 else 503
            if mode == "slow":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\n")
                for _ in range(20):
                    writer.write(b"x")
                    await writer.drain()
                    await asyncio.sleep(0.2)
                return
            reason = b"OK" if status == 200 else b"Service Unavailable"
            writer.write(b"HTTP/1.1 %d %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                         % (status, reason))
            body = b"ok\n" if status == 200 else b"down\n"
            writer.write(b"1\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (body[:1], len(body) - 1, body[1:]))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()
    return serve


class Udp(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(b"pong " + data, addr)


async def main():
    loop = asyncio.get_running_loop()
    servers = []
    for arg in sys.argv[1:]:
        mode, port = arg.split(":", 1)
        if mode == "udp":
            await loop.create_datagram_endpoint(Udp, local_addr=("0.0.0.0", int(port)))
            continue
        if mode != "many":
            ports = [int(port)]
        else:
            lo, hi = port.split("-")
            ports = range(int(lo), int(hi) + 1)
            mode = "ok"
        for p in ports:
            servers.append(await asyncio.start_server(handler(mode, p), "0.0.0.0", p, backlog=256))
    print("ready", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
