"""The server's client manager: python-socketio's, sending to one connection in place.

python-socketio's :class:`~socketio.AsyncManager` starts a task per recipient of an
emit and waits for them all, also when there is one recipient, which is every emit of
the server (a call to a provider, a chunk to a client). :class:`Manager` sends to a
single recipient in the emitting task, with the same packets, and leaves rooms and
broadcasts to python-socketio. As with the tasks, a failure to send is logged and not
raised to the emitter; a payload that cannot be encoded is raised when the emit has
no callback.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from socketio import packet

log = logging.getLogger("gleitzeit.socketio")


class Manager(socketio.AsyncManager):
    """Rooms and participants as python-socketio's; one recipient without a task."""

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        participants = self.rooms.get(namespace, {}).get(room) if type(room) is str else None
        if participants is None or len(participants) != 1 or skip_sid is not None:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
            return
        ((sid, eio_sid),) = participants.items()
        if type(data) is tuple:
            args = list(data)
        else:
            args = [] if data is None else [data]
        server = self.server
        if callback is None:
            pkt = server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args])
            encoded = pkt.encode()  # raises here, as python-socketio's does
            try:
                if type(encoded) is str:
                    await server.eio.send(eio_sid, encoded)
                else:  # with binary attachments
                    for part in encoded:
                        await server.eio.send(eio_sid, part)
            except Exception:
                log.exception("sending %r to %s failed", event, sid)
            return
        ack_id = self._generate_ack_id(sid, callback)
        pkt = server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args], id=ack_id)
        try:
            await server._send_packet(eio_sid, pkt)
        except Exception:
            log.exception("sending %r to %s failed", event, sid)
