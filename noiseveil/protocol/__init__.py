"""TransNet's two-party training protocol (Ito, Kinoshita & Kiya, APSIPA ASC 2020, Fig. 3).

The user trains the transformation network h_θ on plaintexts it never sends; the cloud holds
the classifier ψ it never shows. They exchange only the messages of :mod:`.messages`, through
a :class:`~.transport.Transport`: in-process or over HTTP.
"""

from noiseveil.protocol.cloud import CloudService
from noiseveil.protocol.messages import (
    ClassifyReply,
    ClassifyRequest,
    LossReply,
    LossRequest,
    ProtocolError,
)
from noiseveil.protocol.transport import HttpTransport, InProcessTransport, Transport

__all__ = [
    "ClassifyReply",
    "ClassifyRequest",
    "CloudService",
    "HttpTransport",
    "InProcessTransport",
    "LossReply",
    "LossRequest",
    "ProtocolError",
    "Transport",
]
