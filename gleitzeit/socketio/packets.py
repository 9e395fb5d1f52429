"""Socket.IO packets as python-socketio's, with less work per packet.

python-socketio's :class:`~socketio.packet.Packet` walks every payload for ``bytes``
before encoding it (to send those as binary attachments), builds a JSON encoder per
packet and a JSON decoder per packet received. :class:`Packet` encodes with one
encoder and looks for ``bytes`` only when JSON refused the payload, which is where a
payload with ``bytes`` ends up; it decodes with one decoder, with engine.io's limit on
integer literals. What goes on the wire is the same text.
"""

from __future__ import annotations

import json
from typing import Any

from engineio import json as engineio_json
from socketio import packet

_encode = json.JSONEncoder(separators=(",", ":")).encode
#: engine.io's ``loads``: integer literals of more than 100 digits are refused.
_decode = json.JSONDecoder(parse_int=engineio_json._safe_int).decode


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
        if binary is None and data is not None and encoded_packet is None:
            # The JSON now: when it takes the payload, there are no bytes in it.
            try:
                self._json = _encode(data)
                binary = False
            except TypeError:
                pass  # bytes (sent as attachments), or what JSON cannot send
        super().__init__(packet_type, data, namespace, id, binary, encoded_packet)

    def encode(self) -> Any:
        if self._json is None or self.packet_type not in (packet.EVENT, packet.ACK):
            return super().encode()
        encoded = str(self.packet_type)
        if self.namespace is not None and self.namespace != "/":
            encoded += self.namespace + ","
        if self.id is not None:
            encoded += str(self.id)
        return encoded + self._json
