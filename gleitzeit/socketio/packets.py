"""Socket.IO packets as python-socketio's, with less work per packet.

python-socketio's :class:`~socketio.packet.Packet` walks every payload for ``bytes``
before encoding it (to send those as binary attachments), builds a JSON encoder per
packet and a JSON decoder per packet received. :class:`Packet` encodes with one
encoder and looks for ``bytes`` only when JSON refused the payload, which is where a
payload with ``bytes`` ends up; it decodes with one decoder, with engine.io's limit on
integer literals. What goes on the wire is the same text.

Two checks of the size limit (``payload_size``) use what the packets know instead of
encoding the payload once more: :func:`size_bound` bounds the size of a payload just
received by the length of its text, and :func:`encode_once` hands the JSON it made for
the check to the packet that sends the payload.
"""

from __future__ import annotations

import json
import re
from contextvars import ContextVar
from typing import Any

from engineio import json as engineio_json
from socketio import packet

_encode = json.JSONEncoder(separators=(",", ":")).encode
#: engine.io's ``loads``: integer literals of more than 100 digits are refused.
_decode = json.JSONDecoder(parse_int=engineio_json._safe_int).decode


#: An event or ack packet on a namespace: type, namespace, ack id (python-socketio
#: refuses ids of 100 digits and more; those go to its decode), then JSON.
_HEAD = re.compile(r"([23])(/[^,?/][^,?]*),([0-9]{0,50})(?=[\[{])")

#: Re-encoding JSON text compactly makes it at most this many times longer: a character
#: outside the BMP is one in the text and twelve as a pair of \u escapes; a number at
#: most 4.5 times (``1e15`` -> ``1000000000000000.0``); whitespace goes.
_GROWTH = 12

#: The data of the packet decoded last in this context (a handler's task is made right
#: after its packet is decoded, and an ack's callback runs where it is) and the length
#: of its text.
_received: ContextVar[tuple[Any, int] | None] = ContextVar("gleitzeit_received", default=None)

#: A payload and its JSON, made by :func:`encode_once` for the packet that sends it.
_encoded: list[Any] = [None, ""]


def size_bound(payload: Any) -> int | None:
    """At least the size of ``payload`` as compact JSON (what ``payload_size`` counts)
    when it is, unchanged, an argument of the packet received last here (an event's
    handler, an ack's callback); else None."""
    received = _received.get()
    if received is not None and type(received[0]) is list:
        for item in received[0]:
            if item is payload:
                return received[1] * _GROWTH
    return None


def encode_once(payload: Any) -> str:
    """``payload`` as compact JSON (raises ``TypeError`` as ``json`` does); the next
    packet made with ``payload`` as its only argument sends this text without encoding
    it again."""
    text = _encode(payload)
    _encoded[0], _encoded[1] = payload, text
    return text


class _Json:
    """The ``json`` a packet class uses: ``dumps`` and ``loads`` as engine.io's."""

    @staticmethod
    def dumps(data: Any, **kwargs: Any) -> str:
        if kwargs and kwargs != {"separators": (",", ":")}:
            return engineio_json.dumps(data, **kwargs)
        return _encode(data)

    @staticmethod
    def loads(text: Any, **kwargs: Any) -> Any:
        if kwargs or type(text) is not str or text.startswith("\ufeff"):
            return engineio_json.loads(text, **kwargs)
        return _decode(text)


class Packet(packet.Packet):
    """A Socket.IO packet; pass the class as ``serializer=`` to a server or client."""

    json = _Json
    data: Any

    def __init__(
        self,
        packet_type: int = packet.EVENT,
        data: Any = None,
        namespace: str | None = None,
        id: int | None = None,  # noqa: A002 (the base class's name)
        binary: bool | None = None,
        encoded_packet: Any = None,
    ) -> None:
        self._json: str | None = None
        if _encoded[0] is not None and type(data) is list and len(data) == 1:
            if data[0] is _encoded[0]:
                self._json = "[" + _encoded[1] + "]"
                binary = False
            _encoded[0], _encoded[1] = None, ""
        if self._json is None and binary is None and data is not None and encoded_packet is None:
            # The JSON now: when it takes the payload, there are no bytes in it.
            try:
                self._json = _encode(data)
                binary = False
            except TypeError:
                pass  # bytes (sent as attachments), or what JSON cannot send
        super().__init__(packet_type, data, namespace, id, binary, encoded_packet)

    def decode(self, encoded_packet: Any) -> Any:
        # The usual packet (an event or ack on a namespace, with or without an ack id)
        # read at once; anything else as python-socketio reads it.
        head = _HEAD.match(encoded_packet) if type(encoded_packet) is str else None
        if head is None:
            attachments = super().decode(encoded_packet)
            if type(encoded_packet) is str and not attachments:
                _received.set((self.data, len(encoded_packet)))
            return attachments
        kind, namespace, ack_id = head.groups()
        data = self.json.loads(encoded_packet[head.end() :])
        self.packet_type = int(kind)
        self.namespace = namespace
        self.id = int(ack_id) if ack_id else None
        self.data = data
        _received.set((data, len(encoded_packet)))
        return 0

    def encode(self) -> Any:
        if self._json is None or self.packet_type not in (packet.EVENT, packet.ACK):
            return super().encode()
        encoded = str(self.packet_type)
        if self.namespace is not None and self.namespace != "/":
            encoded += self.namespace + ","
        if self.id is not None:
            encoded += str(self.id)
        return encoded + self._json
